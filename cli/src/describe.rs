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
        if resource.kind == "Service" {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let slices = cluster
                .get(&format!(
                    "{}?labelSelector=kubernetes.io%2Fservice-name%3D{name}",
                    catalog
                        .resolve("endpointslices.discovery.k8s.io")?
                        .collection(Some(&namespace))
                ))
                .await?;
            let slices = slices["items"].as_array().cloned().unwrap_or_default();
            crate::write_out(format_args!("{}", service(object, &slices, &events, now)));
            continue;
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
    let rows = event_rows(events, now);
    let widths = crate::get::widths(&rows[0], &rows[1..]);
    for row in &rows {
        out.push_str(&format!("  {}\n", crate::get::line(row, &widths)));
    }
    Ok(out)
}

/// The table of `events`: a header, a rule, one row each.
fn event_rows(events: &[Value], now: jiff::Timestamp) -> Vec<Vec<String>> {
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
    rows
}

/// A Service as `kubectl describe service` prints it, with the ready
/// endpoints of its EndpointSlices for each port.
pub fn service(svc: &Value, slices: &[Value], events: &[Value], now: jiff::Timestamp) -> String {
    let metadata = &svc["metadata"];
    let spec = &svc["spec"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let joined = |v: &Value, separator: &str| -> Option<String> {
        let items: Vec<String> = v.as_array()?.iter().map(text).collect();
        (!items.is_empty()).then(|| items.join(separator))
    };
    let mut lines = vec![
        format!("Name:\t{}", text(&metadata["name"])),
        format!("Namespace:\t{}", text(&metadata["namespace"])),
    ];
    lines.extend(multiline("Labels", &metadata["labels"], "="));
    let mut annotations = metadata["annotations"].clone();
    if let Some(map) = annotations.as_object_mut() {
        map.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    lines.extend(multiline("Annotations", &annotations, ": "));
    let selector: Vec<String> = spec["selector"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect();
    let selector = Some(selector.join(",")).filter(|s| !s.is_empty());
    lines.push(format!(
        "Selector:\t{}",
        selector.as_deref().unwrap_or("<none>")
    ));
    lines.push(format!("Type:\t{}", text(&spec["type"])));
    if let Some(policy) = spec["ipFamilyPolicy"].as_str() {
        lines.push(format!("IP Family Policy:\t{policy}"));
    }
    let families = joined(&spec["ipFamilies"], ",");
    lines.push(format!(
        "IP Families:\t{}",
        families.as_deref().unwrap_or("<none>")
    ));
    lines.push(format!("IP:\t{}", text(&spec["clusterIP"])));
    let ips = joined(&spec["clusterIPs"], ",");
    lines.push(format!("IPs:\t{}", ips.as_deref().unwrap_or("<none>")));
    if let Some(external) = joined(&spec["externalIPs"], ",") {
        lines.push(format!("External IPs:\t{external}"));
    }
    if let Some(ip) = spec["loadBalancerIP"].as_str().filter(|ip| !ip.is_empty()) {
        lines.push(format!("IP:\t{ip}"));
    }
    if let Some(name) = spec["externalName"].as_str().filter(|n| !n.is_empty()) {
        lines.push(format!("External Name:\t{name}"));
    }
    let ingress: Vec<String> = svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let address = text(if i["ip"].is_string() {
                &i["ip"]
            } else {
                &i["hostname"]
            });
            match i["ipMode"].as_str() {
                Some(mode) => format!("{address} ({mode})"),
                None => address,
            }
        })
        .collect();
    if !ingress.is_empty() {
        lines.push(format!("LoadBalancer Ingress:\t{}", ingress.join(", ")));
    }
    for port in spec["ports"].as_array().into_iter().flatten() {
        let name = port["name"].as_str().filter(|n| !n.is_empty());
        let shown = name.unwrap_or("<unset>");
        let protocol = text(&port["protocol"]);
        lines.push(format!("Port:\t{shown}\t{}/{protocol}", port["port"]));
        let target = match &port["targetPort"] {
            Value::String(name) => name.clone(),
            other => other.to_string(),
        };
        lines.push(format!("TargetPort:\t{target}/{protocol}"));
        if let Some(node_port) = port["nodePort"].as_i64().filter(|p| *p != 0) {
            lines.push(format!("NodePort:\t{shown}\t{node_port}/{protocol}"));
        }
        lines.push(format!(
            "Endpoints:\t{}",
            slice_endpoints(slices, name.unwrap_or_default())
        ));
    }
    lines.push(format!(
        "Session Affinity:\t{}",
        text(&spec["sessionAffinity"])
    ));
    for (label, key) in [
        ("External Traffic Policy", "externalTrafficPolicy"),
        ("Internal Traffic Policy", "internalTrafficPolicy"),
    ] {
        if let Some(policy) = spec[key].as_str().filter(|p| !p.is_empty()) {
            lines.push(format!("{label}:\t{policy}"));
        }
    }
    if let Some(port) = spec["healthCheckNodePort"].as_i64().filter(|p| *p != 0) {
        lines.push(format!("HealthCheck NodePort:\t{port}"));
    }
    if let Some(ranges) = joined(&spec["loadBalancerSourceRanges"], ",") {
        lines.push(format!("LoadBalancer Source Ranges:\t{ranges}"));
    }
    if events.is_empty() {
        lines.push("Events:\t<none>".into());
    } else {
        lines.push("Events:".into());
        lines.extend(
            event_rows(events, now)
                .iter()
                .map(|row| format!("  {}", row.join("\t"))),
        );
    }
    tabbed(&lines)
}

/// `Label:\tk=v` and `\tk=v` lines for a map, sorted; `<none>` when empty.
/// Annotations (`separator` ": ") as kubectl's `printAnnotationsMultiline`:
/// a value that is long or has several lines goes below its key, indented,
/// each line cut at 140 characters.
fn multiline(label: &str, map: &Value, separator: &str) -> Vec<String> {
    const LONGEST: usize = 140;
    let mut lines = Vec::new();
    for (key, value) in map.as_object().into_iter().flatten() {
        let indent = if lines.is_empty() {
            format!("{label}:\t")
        } else {
            "\t".to_owned()
        };
        let value = value.as_str().unwrap_or_default().trim_end_matches('\n');
        let long = key.len() + value.len() + 2 > LONGEST || value.contains('\n');
        if separator == "=" || !long {
            lines.push(format!("{indent}{key}{separator}{value}"));
            continue;
        }
        lines.push(format!("{indent}{key}:"));
        for line in value.split('\n') {
            let cut: String = line.chars().take(LONGEST - 2).collect();
            let more = if cut.len() < line.len() { "..." } else { "" };
            lines.push(format!("\t  {cut}{more}"));
        }
    }
    if lines.is_empty() {
        lines.push(format!("{label}:\t<none>"));
    }
    lines
}

/// The ready endpoints of `slices` for the Service port named `port`, as
/// kubectl's `formatEndpointSlices`: `ip:port`, three at most, then how
/// many more; `<none>` without slices.
pub fn slice_endpoints(slices: &[Value], port: &str) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    let mut all = Vec::new();
    for slice in slices {
        let ready: Vec<&str> = slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["conditions"]["ready"] != false)
            .filter_map(|e| e["addresses"][0].as_str())
            .collect();
        let ports: Vec<&Value> = slice["ports"].as_array().into_iter().flatten().collect();
        if ports.is_empty() {
            all.extend(ready.iter().map(|a| a.to_string()));
            continue;
        }
        for p in ports
            .iter()
            .filter(|p| p["name"].as_str().unwrap_or_default() == port)
        {
            all.extend(ready.iter().map(|a| match a.contains(':') {
                true => format!("[{a}]:{}", p["port"]),
                false => format!("{a}:{}", p["port"]),
            }));
        }
    }
    match all.len() {
        0..=3 => all.join(","),
        n => format!("{} + {} more...", all[..3].join(","), n - 3),
    }
}

/// Aligns `\t`-separated cells as Go's tabwriter does for kubectl
/// describe (padding 2): a cell is as wide as the widest in its column
/// among the adjacent lines that have a cell there; the last cell of a
/// line is not aligned.
pub fn tabbed(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<Vec<usize>> = cells.iter().map(|c| vec![0; c.len()]).collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    for column in 0..columns {
        let mut start = 0;
        while start < cells.len() {
            // A block: adjacent lines whose cell `column` is not their last.
            let mut end = start;
            while end < cells.len() && cells[end].len() > column + 1 {
                end += 1;
            }
            if end == start {
                start += 1;
                continue;
            }
            let width = (start..end)
                .map(|i| cells[i][column].chars().count())
                .max()
                .unwrap_or(0)
                + 2;
            for row in widths.iter_mut().take(end).skip(start) {
                row[column] = width;
            }
            start = end;
        }
    }
    let mut out = String::new();
    for (row, widths) in cells.iter().zip(&widths) {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = widths[i]));
            }
        }
        out.push('\n');
    }
    out
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

    #[test]
    fn services_read_as_kubectl_describes_them() {
        let svc = json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.50.50",
                     "clusterIPs": ["10.96.50.50"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}],
                     "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"},
        });
        let slice = json!({"ports": [{"name": "", "port": 8080}], "endpoints": [
            {"addresses": ["10.244.1.2"], "conditions": {"ready": true}},
            {"addresses": ["10.244.2.2"]},
            {"addresses": ["10.244.3.2"], "conditions": {"ready": false}},
        ]});
        let now: jiff::Timestamp = "2026-11-23T10:05:00Z".parse().unwrap();
        let expected = "\
Name:                     web
Namespace:                default
Labels:                   app=web
Annotations:              <none>
Selector:                 app=web
Type:                     NodePort
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.50.50
IPs:                      10.96.50.50
Port:                     <unset>  80/TCP
TargetPort:               8080/TCP
NodePort:                 <unset>  30080/TCP
Endpoints:                10.244.1.2:8080,10.244.2.2:8080
Session Affinity:         None
External Traffic Policy:  Cluster
Internal Traffic Policy:  Cluster
Events:                   <none>
";
        assert_eq!(service(&svc, &[slice], &[], now), expected);

        let lb = json!({
            "metadata": {"name": "lb", "namespace": "shop", "labels": {"a": "1", "b": "2"},
                         "annotations": {"long": "x".repeat(200), "note": "one\ntwo\n", "short": "yes"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "lb"}, "clusterIP": "10.96.0.40",
                     "ports": [{"name": "http", "port": 80, "targetPort": "web", "nodePort": 31000, "protocol": "TCP"}],
                     "sessionAffinity": "ClientIP"},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.31.255.1", "ipMode": "VIP"}]}},
        });
        let events = [
            json!({"type": "Normal", "reason": "IPAllocated", "lastTimestamp": "2026-11-23T10:04:00Z",
            "source": {"component": "service-lb"}, "message": "Assigned IP 172.31.255.1"}),
        ];
        let text = service(&lb, &[], &events, now);
        assert!(
            text.contains("Labels:                a=1\n                       b=2\n"),
            "{text}"
        );
        let cut = format!("{}...", "x".repeat(138));
        let annotations = format!(
            "Annotations:           long:\n                         {cut}\n                       note:\n                         one\n                         two\n                       short: yes\n"
        );
        assert!(text.contains(&annotations), "{text}");
        assert!(text.contains("IP Families:           <none>\nIP:                    10.96.0.40\nIPs:                   <none>\n"), "{text}");
        assert!(text.contains("LoadBalancer Ingress:  172.31.255.1 (VIP)\nPort:                  http  80/TCP\nTargetPort:            web/TCP\nNodePort:              http  31000/TCP\nEndpoints:             <none>\n"), "{text}");
        assert!(text.ends_with("Events:\n  Type    Reason       Age   From        Message\n  ----    ------       ----  ----        -------\n  Normal  IPAllocated  60s   service-lb  Assigned IP 172.31.255.1\n"), "{text}");
    }

    #[test]
    fn slice_endpoints_follow_the_port_name_and_stop_at_three() {
        let slice = |port: &str, ips: &[&str]| {
            let endpoints: Vec<Value> = ips.iter().map(|ip| json!({"addresses": [ip]})).collect();
            json!({"ports": [{"name": port, "port": 8080}], "endpoints": endpoints})
        };
        let slices = [
            slice("http", &["10.0.0.1", "10.0.0.2"]),
            slice("http", &["10.0.0.3", "10.0.0.4"]),
            slice("metrics", &["10.0.0.5"]),
        ];
        assert_eq!(
            slice_endpoints(&slices, "http"),
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more..."
        );
        assert_eq!(slice_endpoints(&slices, "metrics"), "10.0.0.5:8080");
        assert_eq!(slice_endpoints(&slices, "other"), "");
        assert_eq!(slice_endpoints(&[], "http"), "<none>");
    }
}
