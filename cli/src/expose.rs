//! `skiff expose`: a Service for a Deployment, ReplicaSet,
//! ReplicationController, Pod or Service, built as `kubectl expose` builds
//! it: the selector from the object's own (`spec.selector.matchLabels`,
//! an RC's `spec.selector`, a pod's labels), the ports from `--port` or
//! from the object's ports, the object's labels.

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use crate::cluster::Cluster;
use crate::say;

/// Options of `skiff expose`.
#[derive(clap::Args, Default)]
pub struct ExposeArgs {
    /// TYPE/NAME (deployment/web, rs/web-abc, rc/db, pod/p, svc/s), or TYPE.
    object: String,
    /// NAME, when the first argument is only the type.
    name: Option<String>,
    /// The Service's port [default: the object's ports].
    #[arg(long)]
    port: Option<i32>,
    /// The port (number or name) on the pods that traffic goes to
    /// [default: the Service's port].
    #[arg(long)]
    target_port: Option<String>,
    /// ClusterIP (the server's default), NodePort or LoadBalancer.
    #[arg(long = "type", value_name = "TYPE")]
    service_type: Option<String>,
    /// The Service's name [default: the object's].
    #[arg(long = "name", value_name = "NAME")]
    name_override: Option<String>,
    /// TCP, UDP or SCTP [default: the object's port's protocol, else TCP].
    #[arg(long)]
    protocol: Option<String>,
    /// The node port to ask for (NodePort and LoadBalancer; the first port).
    #[arg(long)]
    node_port: Option<i32>,
    /// The cluster IP to ask for ("None": a headless Service).
    #[arg(long)]
    cluster_ip: Option<String>,
    /// None or ClientIP.
    #[arg(long)]
    session_affinity: Option<String>,
    /// The selector, `key=value,...` [default: the object's].
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// The namespace [default: the kubeconfig's, else default].
    #[arg(short, long)]
    namespace: Option<String>,
}

/// `skiff expose`.
pub async fn run(cluster: &Cluster, args: ExposeArgs) -> Result<()> {
    let catalog = cluster.catalog().await?;
    let (kind, name) = match (args.object.split_once('/'), &args.name) {
        (Some((kind, name)), None) => (kind, name),
        (None, Some(name)) => (args.object.as_str(), name.as_str()),
        _ => bail!("name the object to expose as TYPE/NAME or TYPE NAME"),
    };
    let resource = catalog.resolve(kind)?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let object = cluster.get(&resource.object(&namespace, name)).await?;
    let service = service_for(&resource.kind, &object, &args)?;
    let services = catalog.resolve("services")?;
    let created = cluster
        .create(&services.collection(Some(&namespace)), &service)
        .await?;
    let name = created["metadata"]["name"].as_str().unwrap_or_default();
    say!("{} exposed", services.qualified(name));
    Ok(())
}

/// The Service `kubectl expose` makes for `object` of `kind`.
pub fn service_for(kind: &str, object: &Value, args: &ExposeArgs) -> Result<Value> {
    let (selector, template_spec) = match kind {
        "Deployment" | "ReplicaSet" => {
            let selector = &object["spec"]["selector"];
            if selector["matchExpressions"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
            {
                bail!(
                    "couldn't retrieve selectors via --selector flag or introspection: \
                     the {kind}'s selector has matchExpressions, which a Service cannot use"
                );
            }
            (
                selector["matchLabels"].clone(),
                &object["spec"]["template"]["spec"],
            )
        }
        "ReplicationController" => (
            object["spec"]["selector"].clone(),
            &object["spec"]["template"]["spec"],
        ),
        "Pod" => (object["metadata"]["labels"].clone(), &object["spec"]),
        "Service" => (object["spec"]["selector"].clone(), &Value::Null),
        other => bail!("cannot expose a {other}"),
    };
    let selector = match &args.selector {
        Some(text) => parse_selector(text)?,
        None => selector,
    };
    if selector.as_object().is_none_or(Map::is_empty) {
        bail!("couldn't retrieve selectors via --selector flag or introspection");
    }
    // The object's ports and their protocols, as kubectl's introspection.
    let found: Vec<(i64, String)> = if kind == "Service" {
        object["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["port"].as_i64()?, protocol_of(p))))
            .collect()
    } else {
        template_spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| Some((p["containerPort"].as_i64()?, protocol_of(&p))))
            .collect()
    };
    // Each (port, protocol) once: a DNS server's 53/TCP and 53/UDP are two
    // Service ports. `--protocol` overrides what was found.
    let mut entries: Vec<(i64, String)> = match args.port {
        Some(port) => {
            let port = i64::from(port);
            let protocol = found
                .iter()
                .find(|(p, _)| *p == port)
                .map(|(_, proto)| proto.clone());
            vec![(port, protocol.unwrap_or_else(|| "TCP".into()))]
        }
        None => found,
    };
    if let Some(protocol) = &args.protocol {
        entries
            .iter_mut()
            .for_each(|(_, proto)| *proto = protocol.clone());
    }
    let mut seen = BTreeSet::new();
    entries.retain(|entry| seen.insert(entry.clone()));
    if entries.is_empty() {
        bail!("couldn't find port via --port flag or introspection");
    }
    let several = entries.len() > 1;
    let ports: Vec<Value> = entries
        .into_iter()
        .enumerate()
        .map(|(i, (port, protocol))| {
            let target = match &args.target_port {
                Some(text) => text
                    .parse::<i64>()
                    .map_or_else(|_| json!(text), |n| json!(n)),
                None => json!(port),
            };
            let mut entry = json!({"port": port, "protocol": protocol, "targetPort": target});
            if several {
                entry["name"] = json!(format!("port-{}", i + 1));
            }
            if let (0, Some(node_port)) = (i, args.node_port) {
                entry["nodePort"] = json!(node_port);
            }
            entry
        })
        .collect();
    let name = args
        .name_override
        .clone()
        .or_else(|| object["metadata"]["name"].as_str().map(str::to_owned))
        .ok_or_else(|| anyhow!("the object has no name"))?;
    let mut metadata = json!({"name": name});
    if let Some(labels) = object["metadata"]["labels"]
        .as_object()
        .filter(|l| !l.is_empty())
    {
        metadata["labels"] = json!(labels);
    }
    let mut spec = json!({"ports": ports, "selector": selector});
    for (key, value) in [
        ("type", &args.service_type),
        ("clusterIP", &args.cluster_ip),
        ("sessionAffinity", &args.session_affinity),
    ] {
        if let Some(value) = value {
            spec[key] = json!(value);
        }
    }
    Ok(json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}))
}

fn protocol_of(port: &Value) -> String {
    port["protocol"].as_str().unwrap_or("TCP").to_owned()
}

/// `key=value,...` as a label map.
fn parse_selector(text: &str) -> Result<Value> {
    let mut map = Map::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("the selector {text:?} must be key=value,..."))?;
        map.insert(key.trim().to_owned(), json!(value.trim()));
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [
                    {"name": "web", "ports": [{"containerPort": 8080}, {"containerPort": 9053, "protocol": "UDP"}]}
                ]}},
            },
        })
    }

    #[test]
    fn a_deployment_with_port_and_target_port() {
        let args = ExposeArgs {
            port: Some(80),
            target_port: Some("8080".into()),
            ..ExposeArgs::default()
        };
        let service = service_for("Deployment", &deployment(), &args).unwrap();
        assert_eq!(
            service,
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                         "selector": {"app": "web"}}})
        );
    }

    #[test]
    fn ports_and_protocols_from_the_object_and_named_target_ports() {
        let args = ExposeArgs {
            target_port: Some("http".into()),
            service_type: Some("NodePort".into()),
            node_port: Some(30080),
            name_override: Some("web-np".into()),
            ..ExposeArgs::default()
        };
        let service = service_for("Deployment", &deployment(), &args).unwrap();
        assert_eq!(service["metadata"]["name"], "web-np");
        assert_eq!(service["spec"]["type"], "NodePort");
        assert_eq!(
            service["spec"]["ports"],
            json!([
                {"name": "port-1", "port": 8080, "protocol": "TCP", "targetPort": "http", "nodePort": 30080},
                {"name": "port-2", "port": 9053, "protocol": "UDP", "targetPort": "http"},
            ])
        );
    }

    #[test]
    fn one_port_number_on_two_protocols_is_two_service_ports() {
        let pod = json!({"metadata": {"name": "dns", "labels": {"app": "dns"}}, "spec": {"containers": [
            {"name": "c", "ports": [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53, "protocol": "TCP"}]}]}});
        let service = service_for("Pod", &pod, &ExposeArgs::default()).unwrap();
        let ports: Vec<(&Value, &Value)> = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (&p["port"], &p["protocol"]))
            .collect();
        assert_eq!(
            ports,
            [(&json!(53), &json!("UDP")), (&json!(53), &json!("TCP"))]
        );
    }

    #[test]
    fn pods_rcs_and_services_give_their_selectors() {
        let args = ExposeArgs {
            port: Some(80),
            ..ExposeArgs::default()
        };
        let pod =
            json!({"metadata": {"name": "p", "labels": {"run": "p"}}, "spec": {"containers": []}});
        let service = service_for("Pod", &pod, &args).unwrap();
        assert_eq!(service["spec"]["selector"], json!({"run": "p"}));
        assert_eq!(service["spec"]["ports"][0]["targetPort"], 80);
        let rc = json!({"metadata": {"name": "db"}, "spec": {"selector": {"app": "db"}}});
        let service = service_for("ReplicationController", &rc, &args).unwrap();
        assert_eq!(service["spec"]["selector"], json!({"app": "db"}));
        assert!(service["metadata"].get("labels").is_none());
        let svc = json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "s"},
            "ports": [{"port": 53, "protocol": "UDP"}]}});
        let service = service_for("Service", &svc, &ExposeArgs::default()).unwrap();
        assert_eq!(
            service["spec"]["ports"],
            json!([{"port": 53, "protocol": "UDP", "targetPort": 53}])
        );
    }

    #[test]
    fn what_cannot_be_exposed() {
        let args = ExposeArgs::default();
        let err = service_for("ConfigMap", &json!({}), &args).unwrap_err();
        assert_eq!(err.to_string(), "cannot expose a ConfigMap");
        let mut expressions = deployment();
        expressions["spec"]["selector"]["matchExpressions"] =
            json!([{"key": "app", "operator": "Exists"}]);
        assert!(service_for("Deployment", &expressions, &args).is_err());
        let portless = json!({"metadata": {"name": "p", "labels": {"run": "p"}}, "spec": {"containers": [{"name": "c"}]}});
        let err = service_for("Pod", &portless, &args).unwrap_err();
        assert_eq!(
            err.to_string(),
            "couldn't find port via --port flag or introspection"
        );
        let with_selector = ExposeArgs {
            selector: Some("tier=fe".into()),
            port: Some(80),
            ..ExposeArgs::default()
        };
        let service = service_for("Pod", &portless, &with_selector).unwrap();
        assert_eq!(service["spec"]["selector"], json!({"tier": "fe"}));
    }
}
