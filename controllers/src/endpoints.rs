//! The Endpoints controller: for each Service with a selector, an Endpoints
//! object of the same name whose subsets hold the selected pods' IPs —
//! ready ones as `addresses`, the others as `notReadyAddresses` (or as
//! ready when the Service publishes not-ready addresses) — with the ports
//! resolved from each `targetPort` (a number, or a container port's name).
//! An address names its pod's hostname when the pod's subdomain is the
//! Service's name (cluster DNS answers `<hostname>.<service>...` from it).
//! Services without a selector are left to their users. The decision,
//! [`subsets`], is pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

use crate::membership::{selector_of, ServicePods};
use crate::replicaset::is_ready;

/// The port a Service port reaches on `pod`: its `targetPort` as a number,
/// or the number of the pod's container port of that name (None: the pod
/// has no such port).
pub fn target_port(port: &Value, pod: &Pod) -> Option<i64> {
    match &port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| i64::from(p.container_port)),
        _ => port["port"].as_i64(),
    }
}

/// A pod's IP, if it has one yet.
pub fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
}

/// Whether a pod belongs in a Service's endpoints at all (upstream's
/// `ShouldPodBeInEndpoints`): it has an IP, has not finished (Succeeded or
/// Failed), and is not being deleted unless `include_terminating`.
pub fn in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod_ip(pod).is_some()
        && !matches!(phase, Some("Succeeded" | "Failed"))
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The hostname `pod` has under `service`: its `spec.hostname` when its
/// `spec.subdomain` is the Service's name (in the same namespace).
pub fn hostname(service: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| hostname.to_owned())
}

/// One subset being built: its ports, ready and not-ready addresses.
type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);

/// The subsets of a Service's Endpoints: pods grouped by the ports they
/// resolve to, each group one subset, in a stable order. Pods being deleted
/// are left out unless the Service publishes not-ready addresses.
pub fn subsets(service: &Service, pods: &[&Pod]) -> Vec<Value> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses == Some(true);
    let ports: Vec<Value> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| serde_json::to_value(p).expect("JSON"))
        .collect();
    // Ports (as JSON) -> (the ports, ready addresses, not-ready addresses).
    let mut groups: BTreeMap<String, Subset> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = pod_ip(pod).filter(|_| in_endpoints(pod, publish)) else {
            continue;
        };
        let resolved: Vec<Value> = ports
            .iter()
            .filter_map(|p| {
                let mut port = json!({"port": target_port(p, pod)?, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
                if let Some(name) = p["name"].as_str() {
                    port["name"] = json!(name);
                }
                Some(port)
            })
            .collect();
        if resolved.is_empty() && !ports.is_empty() {
            continue;
        }
        let mut address = json!({
            "ip": ip,
            "nodeName": pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            "targetRef": {"kind": "Pod", "namespace": pod.namespace(), "name": pod.name_any(), "uid": pod.uid()},
        });
        if let Some(hostname) = hostname(service, pod) {
            address["hostname"] = json!(hostname);
        }
        let key = serde_json::to_string(&resolved).expect("JSON");
        let group = groups
            .entry(key)
            .or_insert_with(|| (resolved, Vec::new(), Vec::new()));
        if publish || is_ready(pod) {
            group.1.push(address);
        } else {
            group.2.push(address);
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            let by_ip = |a: &Value, b: &Value| a["ip"].as_str().cmp(&b["ip"].as_str());
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut subset = json!({"ports": ports});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            subset
        })
        .collect()
}

struct Controller {
    client: Client,
    members: Arc<ServicePods>,
}

/// Runs the Endpoints controller over the Services and pods of `members`.
pub async fn run(client: Client, members: Arc<ServicePods>) {
    let queue = members.subscribe();
    let controller = Arc::new(Controller {
        client,
        members: members.clone(),
    });
    members.synced().await;
    crate::workqueue::spawn_workers(controller, queue, 1, "endpoint-controller");
}

impl crate::workqueue::Sync for Controller {
    type Error = kube::Error;

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        Controller::sync(self, key).await
    }
}

impl Controller {
    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        let (namespace, name) = key.split_once('/').unwrap_or_default();
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), namespace);
        let Some(service) = self.members.services.get(namespace, name) else {
            // The Service is gone: so is its Endpoints, as upstream deletes it.
            return match api.delete(name, &Default::default()).await {
                Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
                Err(e) => Err(e),
            };
        };
        if selector_of(&service).is_empty() {
            return Ok(());
        }
        let pods = self.members.pods_of(&service);
        let pods: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let subsets = subsets(&service, &pods);
        match api.get_opt(name).await? {
            Some(current) => {
                let have = serde_json::to_value(&current.subsets).expect("JSON");
                let want = if subsets.is_empty() {
                    Value::Null
                } else {
                    json!(subsets)
                };
                if have != want {
                    let patch = json!({"subsets": want});
                    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                        .await?;
                }
            }
            None => {
                let endpoints = json!({
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": namespace, "labels": service.labels()},
                    "subsets": subsets,
                });
                let endpoints: Endpoints =
                    serde_json::from_value(endpoints).map_err(kube::Error::SerdeError)?;
                api.create(&PostParams::default(), &endpoints).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}")},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 9376}]}]},
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn service(ports: Value, publish: bool) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}, "ports": ports, "publishNotReadyAddresses": publish}})).unwrap()
    }

    #[test]
    fn ready_and_not_ready_addresses_with_resolved_ports() {
        let (a, b, c) = (
            pod("a", "10.244.1.3", true),
            pod("b", "10.244.1.2", true),
            pod("c", "10.244.2.2", false),
        );
        let svc = service(
            json!([{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]),
            false,
        );
        let found = subsets(&svc, &[&a, &b, &c]);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0]["ports"],
            json!([{"name": "web", "port": 9376, "protocol": "TCP"}])
        );
        let ips: Vec<&str> = found[0]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["ip"].as_str().unwrap())
            .collect();
        assert_eq!(ips, ["10.244.1.2", "10.244.1.3"]);
        assert_eq!(found[0]["notReadyAddresses"][0]["ip"], "10.244.2.2");
        assert_eq!(found[0]["addresses"][0]["targetRef"]["name"], "b");
        // Published not-ready addresses count as ready.
        let published = subsets(
            &service(json!([{"port": 80, "targetPort": 9376}]), true),
            &[&c],
        );
        assert_eq!(published[0]["addresses"][0]["ip"], "10.244.2.2");
        // A named port a pod lacks leaves it out; a pod without an IP too.
        let missing = subsets(
            &service(json!([{"port": 80, "targetPort": "grpc"}]), false),
            &[&a],
        );
        assert!(missing.is_empty());
        let pending = pod("d", "", false);
        assert!(subsets(&svc, &[&pending]).is_empty());
    }

    #[test]
    fn hostnames_under_their_subdomain_and_terminating_pods_left_out() {
        let svc = service(json!([{"port": 80, "targetPort": 9376}]), false);
        let mut named = pod("db-0", "10.244.1.2", true);
        let spec = named.spec.as_mut().unwrap();
        spec.hostname = Some("db-0".into());
        spec.subdomain = Some("web".into());
        let found = subsets(&svc, &[&named]);
        assert_eq!(found[0]["addresses"][0]["hostname"], "db-0");
        named.spec.as_mut().unwrap().subdomain = Some("other".into());
        let found = subsets(&svc, &[&named]);
        assert!(found[0]["addresses"][0].get("hostname").is_none());
        let mut going = pod("a", "10.244.1.3", true);
        going.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert!(subsets(&svc, &[&going]).is_empty());
        let published = service(json!([{"port": 80, "targetPort": 9376}]), true);
        assert_eq!(subsets(&published, &[&going]).len(), 1);
    }
}
