//! `skiff describe`: one object for a reader: its identity, labels and
//! annotations, the rest of it indented, and the Events about it.

use crate::say;
use anyhow::{Context, Result};
use serde_json::Value;
use skiff_api::table::human_duration;

use crate::cluster::Cluster;

/// Options of `skiff describe`.
#[derive(clap::Args)]
pub struct DescribeArgs {
    /// The type (pods, deploy, ...), or TYPE/NAME.
    resource: String,
    /// The objects; every one in the namespace when none is named.
    names: Vec<String>,
    /// The namespace [default: the kubeconfig's, else default].
    #[arg(short, long)]
    namespace: Option<String>,
}

/// `skiff describe`.
pub async fn run(cluster: &Cluster, args: DescribeArgs) -> Result<()> {
    let catalog = cluster.catalog().await?;
    let (kind, mut names) = match args.resource.split_once('/') {
        Some((kind, name)) => (kind, vec![name.to_owned()]),
        None => (args.resource.as_str(), Vec::new()),
    };
    names.extend(args.names);
    let resource = catalog.resolve(kind)?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let objects = if names.is_empty() {
        let list = cluster.get(&resource.collection(Some(&namespace))).await?;
        list["items"].as_array().cloned().unwrap_or_default()
    } else {
        let mut objects = Vec::new();
        for name in &names {
            objects.push(cluster.get(&resource.object(&namespace, name)).await?);
        }
        objects
    };
    let now = jiff::Timestamp::now();
    for (i, object) in objects.iter().enumerate() {
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
        let events = cluster
            .get(&format!(
                "/api/v1/events?fieldSelector=involvedObject.uid%3D{uid}"
            ))
            .await?;
        let events = events["items"].as_array().cloned().unwrap_or_default();
        if i > 0 {
            say!();
        }
        let related = match resource.kind.as_str() {
            "Deployment" => {
                let sets = cluster
                    .get(&catalog.resolve("replicasets")?.collection(Some(&namespace)))
                    .await?;
                replica_sets(
                    object,
                    sets["items"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                )
            }
            "Node" => {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                let pods = cluster
                    .get(&format!(
                        "/api/v1/pods?fieldSelector=spec.nodeName%3D{name}"
                    ))
                    .await?;
                node_usage(
                    object,
                    pods["items"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                )
            }
            _ => String::new(),
        };
        let text = render(object, &events, now)?;
        // The kind's own section goes before the events.
        let (before, after) = text.split_at(text.rfind("Events:").unwrap_or(text.len()));
        crate::write_out(format_args!("{before}{related}{after}"));
    }
    Ok(())
}

/// A Deployment's ReplicaSets: the one of its current template, and the
/// others that still have pods.
pub fn replica_sets(deployment: &Value, sets: &[Value]) -> String {
    let uid = &deployment["metadata"]["uid"];
    let revision = &deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"];
    let owned: Vec<&Value> = sets
        .iter()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == *uid)
        })
        .collect();
    let line = |rs: &Value| {
        format!(
            "{} ({}/{} replicas created)",
            rs["metadata"]["name"].as_str().unwrap_or_default(),
            rs["status"]["replicas"].as_i64().unwrap_or(0),
            rs["spec"]["replicas"].as_i64().unwrap_or(0)
        )
    };
    let new = owned
        .iter()
        .find(|rs| rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == *revision);
    let old: Vec<String> = owned
        .iter()
        .filter(|rs| {
            Some(**rs) != new.copied() && rs["status"]["replicas"].as_i64().unwrap_or(0) > 0
        })
        .map(|rs| line(rs))
        .collect();
    format!(
        "{:<19}{}\n{:<19}{}\n",
        "OldReplicaSets:",
        if old.is_empty() {
            "<none>".to_owned()
        } else {
            old.join(", ")
        },
        "NewReplicaSet:",
        new.map_or("<none>".to_owned(), |rs| line(rs))
    )
}

/// A node's pods and what they request of it.
pub fn node_usage(node: &Value, pods: &[Value]) -> String {
    use skiff_scheduler::resources::{cpu_millis, memory_bytes};
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .collect();
    let requests = |p: &Value, key: &str, parse: fn(&str) -> Option<i64>| -> i64 {
        p["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["resources"]["requests"][key].as_str().and_then(parse))
            .sum()
    };
    let mut out = format!("Non-terminated Pods:          ({} in total)\n", live.len());
    let mut rows = vec![["Namespace", "Name", "CPU Requests", "Memory Requests"]
        .map(String::from)
        .to_vec()];
    for p in &live {
        rows.push(vec![
            p["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            format!("{}m", requests(p, "cpu", cpu_millis)),
            format!("{}Mi", requests(p, "memory", memory_bytes) >> 20),
        ]);
    }
    let widths = crate::get::widths(&rows[0], &rows[1..]);
    for row in &rows {
        out.push_str(&format!("  {}\n", crate::get::line(row, &widths)));
    }
    let cpu: i64 = live.iter().map(|p| requests(p, "cpu", cpu_millis)).sum();
    let memory: i64 = live
        .iter()
        .map(|p| requests(p, "memory", memory_bytes))
        .sum();
    let allocatable = &node["status"]["allocatable"];
    let percent =
        |used: i64, total: Option<i64>| total.filter(|t| *t > 0).map_or(0, |t| used * 100 / t);
    let cpu_total = allocatable["cpu"].as_str().and_then(cpu_millis);
    let memory_total = allocatable["memory"].as_str().and_then(memory_bytes);
    out.push_str("Allocated resources:\n  Resource  Requests\n");
    out.push_str(&format!(
        "  cpu       {cpu}m ({}%)\n",
        percent(cpu, cpu_total)
    ));
    out.push_str(&format!(
        "  memory    {}Mi ({}%)\n",
        memory >> 20,
        percent(memory, memory_total)
    ));
    out
}

/// The description of `object` with its `events`.
pub fn render(object: &Value, events: &[Value], now: jiff::Timestamp) -> Result<String> {
    let metadata = &object["metadata"];
    let mut out = String::new();
    let mut field = |label: &str, value: &str| {
        out.push_str(&format!("{:<19}{value}\n", format!("{label}:")));
    };
    field("Name", metadata["name"].as_str().unwrap_or_default());
    if let Some(namespace) = metadata["namespace"].as_str() {
        field("Namespace", namespace);
    }
    for (label, key) in [("Labels", "labels"), ("Annotations", "annotations")] {
        let pairs: Vec<String> = metadata[key]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let text = if pairs.is_empty() {
            "<none>".to_owned()
        } else {
            pairs.join(&format!("\n{:19}", ""))
        };
        field(label, &text);
    }
    field(
        "CreationTimestamp",
        metadata["creationTimestamp"].as_str().unwrap_or_default(),
    );
    if let Some(deleted) = metadata["deletionTimestamp"].as_str() {
        field("DeletionTimestamp", deleted);
    }
    if let Some(owner) = metadata["ownerReferences"]
        .as_array()
        .and_then(|owners| owners.iter().find(|o| o["controller"] == true))
    {
        let text = format!(
            "{}/{}",
            owner["kind"].as_str().unwrap_or_default(),
            owner["name"].as_str().unwrap_or_default()
        );
        field("Controlled By", &text);
    }
    for (key, value) in object.as_object().into_iter().flatten() {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        let yaml = serde_saphyr::to_string(value).context("cannot write YAML")?;
        out.push_str(&format!("{}{}:\n", key[..1].to_uppercase(), &key[1..]));
        for line in yaml.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    if events.is_empty() {
        out.push_str("Events:            <none>\n");
        return Ok(out);
    }
    out.push_str("Events:\n");
    let header = ["Type", "Reason", "Age", "From", "Message"].map(String::from);
    let rule = ["----", "------", "----", "----", "-------"].map(String::from);
    let mut rows = vec![header.to_vec(), rule.to_vec()];
    for event in events {
        let when = ["lastTimestamp", "eventTime", "firstTimestamp"]
            .iter()
            .find_map(|k| event[*k].as_str())
            .or(event["metadata"]["creationTimestamp"].as_str())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| human_duration(now.duration_since(t).as_secs()))
            .unwrap_or_else(|| "<unknown>".into());
        let count = event["count"].as_i64().unwrap_or(1);
        let age = if count > 1 {
            format!("{when} (x{count})")
        } else {
            when
        };
        let from = event["source"]["component"]
            .as_str()
            .or(event["reportingComponent"].as_str())
            .unwrap_or_default();
        rows.push(vec![
            event["type"].as_str().unwrap_or_default().to_owned(),
            event["reason"].as_str().unwrap_or_default().to_owned(),
            age,
            from.to_owned(),
            event["message"].as_str().unwrap_or_default().to_owned(),
        ]);
    }
    let widths = crate::get::widths(&rows[0], &rows[1..]);
    for row in &rows {
        out.push_str(&format!("  {}\n", crate::get::line(row, &widths)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployments_show_their_replica_sets_and_nodes_their_pods() {
        let deployment = json!({"metadata": {"uid": "d1", "annotations": {"deployment.kubernetes.io/revision": "2"}}});
        let rs = |name: &str, revision: &str, replicas: i64| {
            json!({
            "metadata": {"name": name, "ownerReferences": [{"uid": "d1"}], "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"replicas": replicas}, "status": {"replicas": replicas}})
        };
        let text = replica_sets(
            &deployment,
            &[
                rs("web-old", "1", 1),
                rs("web-new", "2", 3),
                rs("web-older", "0", 0),
            ],
        );
        assert_eq!(text, "OldReplicaSets:    web-old (1/1 replicas created)\nNewReplicaSet:     web-new (3/3 replicas created)\n");
        let node = json!({"status": {"allocatable": {"cpu": "8", "memory": "32Gi"}}});
        let pod = json!({"metadata": {"namespace": "default", "name": "web-1"},
            "spec": {"containers": [{"resources": {"requests": {"cpu": "2", "memory": "8Gi"}}}]}, "status": {"phase": "Running"}});
        let usage = node_usage(&node, &[pod]);
        assert!(
            usage.starts_with("Non-terminated Pods:          (1 in total)\n"),
            "{usage}"
        );
        assert!(
            usage.contains("  cpu       2000m (25%)\n  memory    8192Mi (25%)\n"),
            "{usage}"
        );
    }

    #[test]
    fn identity_first_then_the_rest_then_events() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"},
                         "creationTimestamp": "2026-11-23T10:00:00Z",
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1", "controller": true}]},
            "spec": {"nodeName": "skiff-node-1"},
        });
        let now: jiff::Timestamp = "2026-11-23T10:05:00Z".parse().unwrap();
        let events = [json!({"type": "Normal", "reason": "Scheduled", "count": 2,
            "lastTimestamp": "2026-11-23T10:04:00Z", "source": {"component": "default-scheduler"},
            "message": "Successfully assigned default/web to skiff-node-1"})];
        let text = render(&pod, &events, now).unwrap();
        let expected = "\
Name:              web
Namespace:         default
Labels:            app=web
                   tier=fe
Annotations:       <none>
CreationTimestamp: 2026-11-23T10:00:00Z
Controlled By:     ReplicaSet/web-1
Spec:
  nodeName: skiff-node-1
Events:
  Type     Reason      Age        From                Message
  ----     ------      ----       ----                -------
  Normal   Scheduled   60s (x2)   default-scheduler   Successfully assigned default/web to skiff-node-1
";
        assert_eq!(text, expected);
        assert!(render(&pod, &[], now)
            .unwrap()
            .ends_with("Events:            <none>\n"));
    }
}
