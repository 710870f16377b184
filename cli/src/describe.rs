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
        crate::write_out(format_args!("{}", render(object, &events, now)?));
    }
    Ok(())
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
