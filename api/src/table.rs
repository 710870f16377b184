//! Server-side Tables: the columns `kubectl get` prints for each kind, and
//! each object's row, computed as upstream's printers compute them.

use std::collections::BTreeSet;

use serde_json::{json, Value};

/// One column: its name (kubectl upper-cases it), type and priority (0 is
/// always shown, 1 only with `-o wide`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column's name.
    pub name: &'static str,
    /// `string`, `integer` or `date`.
    pub kind: &'static str,
    /// 0: shown by default; 1: shown with `-o wide`.
    pub priority: u8,
}

const fn col(name: &'static str, kind: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind,
        priority,
    }
}

/// The columns of `kind`'s Table.
pub fn columns(kind: &str) -> Vec<Column> {
    let s = "string";
    let i = "integer";
    match kind {
        "Pod" => vec![
            col("Name", s, 0),
            col("Ready", s, 0),
            col("Status", s, 0),
            col("Restarts", s, 0),
            col("Age", s, 0),
            col("IP", s, 1),
            col("Node", s, 1),
            col("Nominated Node", s, 1),
            col("Readiness Gates", s, 1),
        ],
        "Service" => vec![
            col("Name", s, 0),
            col("Type", s, 0),
            col("Cluster-IP", s, 0),
            col("External-IP", s, 0),
            col("Port(s)", s, 0),
            col("Age", s, 0),
            col("Selector", s, 1),
        ],
        "Deployment" => vec![
            col("Name", s, 0),
            col("Ready", s, 0),
            col("Up-to-date", i, 0),
            col("Available", i, 0),
            col("Age", s, 0),
            col("Containers", s, 1),
            col("Images", s, 1),
            col("Selector", s, 1),
        ],
        "ReplicaSet" | "ReplicationController" => vec![
            col("Name", s, 0),
            col("Desired", i, 0),
            col("Current", i, 0),
            col("Ready", i, 0),
            col("Age", s, 0),
            col("Containers", s, 1),
            col("Images", s, 1),
            col("Selector", s, 1),
        ],
        "DaemonSet" => vec![
            col("Name", s, 0),
            col("Desired", i, 0),
            col("Current", i, 0),
            col("Ready", i, 0),
            col("Up-to-date", i, 0),
            col("Available", i, 0),
            col("Node Selector", s, 0),
            col("Age", s, 0),
            col("Containers", s, 1),
            col("Images", s, 1),
            col("Selector", s, 1),
        ],
        "StatefulSet" => vec![
            col("Name", s, 0),
            col("Ready", s, 0),
            col("Age", s, 0),
            col("Containers", s, 1),
            col("Images", s, 1),
        ],
        "Node" => vec![
            col("Name", s, 0),
            col("Status", s, 0),
            col("Roles", s, 0),
            col("Age", s, 0),
            col("Version", s, 0),
            col("Internal-IP", s, 1),
            col("External-IP", s, 1),
            col("OS-Image", s, 1),
            col("Kernel-Version", s, 1),
            col("Container-Runtime", s, 1),
        ],
        "Namespace" => vec![col("Name", s, 0), col("Status", s, 0), col("Age", s, 0)],
        "Endpoints" => vec![col("Name", s, 0), col("Endpoints", s, 0), col("Age", s, 0)],
        "EndpointSlice" => vec![
            col("Name", s, 0),
            col("AddressType", s, 0),
            col("Ports", s, 0),
            col("Endpoints", s, 0),
            col("Age", s, 0),
        ],
        "Event" => vec![
            col("Last Seen", s, 0),
            col("Type", s, 0),
            col("Reason", s, 0),
            col("Object", s, 0),
            col("Message", s, 0),
        ],
        "ConfigMap" => vec![col("Name", s, 0), col("Data", i, 0), col("Age", s, 0)],
        "Secret" => vec![
            col("Name", s, 0),
            col("Type", s, 0),
            col("Data", i, 0),
            col("Age", s, 0),
        ],
        "ServiceAccount" => vec![col("Name", s, 0), col("Secrets", i, 0), col("Age", s, 0)],
        "Lease" => vec![col("Name", s, 0), col("Holder", s, 0), col("Age", s, 0)],
        "IPAddress" => vec![col("Name", s, 0), col("ParentRef", s, 0), col("Age", s, 0)],
        "Ingress" => vec![
            col("Name", s, 0),
            col("Class", s, 0),
            col("Hosts", s, 0),
            col("Address", s, 0),
            col("Ports", s, 0),
            col("Age", s, 0),
        ],
        _ => vec![col("Name", s, 0), col("Age", s, 0)],
    }
}

/// Upstream's short durations: `45s`, `3m12s`, `17m`, `5h3m`, `9h`, `3d4h`, `12d`, `400d`, `2y30d`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    match s {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => match s % 60 {
            0 => format!("{m}m"),
            rest => format!("{m}m{rest}s"),
        },
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 => match m % 60 {
            0 => format!("{h}h"),
            rest => format!("{h}h{rest}m"),
        },
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 => match h % 24 {
            0 => format!("{d}d"),
            rest => format!("{d}d{rest}h"),
        },
        _ if d < 365 * 2 => format!("{d}d"),
        _ if d < 365 * 8 => match d % 365 {
            0 => format!("{}y", d / 365),
            rest => format!("{}y{rest}d", d / 365),
        },
        _ => format!("{}y", d / 365),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn int(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// `key=value,...` of a label map, `<none>` when empty.
fn selector(map: &Value) -> String {
    let pairs: Vec<String> = map
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect())
        .unwrap_or_default();
    or_none(pairs.join(","))
}

fn age(object: &Value, now: jiff::Timestamp) -> String {
    match object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    {
        Some(created) => human_duration(now.as_second() - created.as_second()),
        None => "<unknown>".into(),
    }
}

fn containers(template_spec: &Value, field: &str) -> String {
    let values: Vec<String> = template_spec["containers"]
        .as_array()
        .map(|cs| cs.iter().map(|c| text(&c[field])).collect())
        .unwrap_or_default();
    values.join(",")
}

fn service_ports(spec: &Value) -> String {
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64().filter(|n| *n > 0) {
                Some(node) => format!("{}:{node}/{protocol}", text(&p["port"])),
                None => format!("{}/{protocol}", text(&p["port"])),
            }
        })
        .collect();
    or_none(ports.join(","))
}

/// The strings of an array of strings.
fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(text).collect()
}

/// EXTERNAL-IP as upstream's `getServiceExternalIP` computes it (the
/// server's Tables are always wide: load-balancer addresses are not
/// clipped).
fn external_ips(object: &Value) -> String {
    let spec = &object["spec"];
    let external = strings(&spec["externalIPs"]);
    match spec["type"].as_str().unwrap_or("ClusterIP") {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            // Sorted and without repeats, as upstream's string set.
            let ingress: BTreeSet<String> = object["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| {
                    text(if i["ip"].is_string() {
                        &i["ip"]
                    } else {
                        &i["hostname"]
                    })
                })
                .filter(|a| !a.is_empty())
                .collect();
            let all: Vec<String> = ingress.into_iter().chain(external).collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(&spec["externalName"]),
        _ => "<unknown>".into(),
    }
}

/// The first three of `list`, then how many more, as upstream's printers
/// shorten lists; `empty` when there is nothing.
fn at_most_three(list: &[String], empty: &str) -> String {
    match list.len() {
        0 => empty.into(),
        1..=3 => list.join(","),
        n => format!("{} + {} more...", list[..3].join(","), n - 3),
    }
}

fn pod_cells(pod: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|s| s["ready"].as_bool() == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|s| s["restartCount"].as_i64())
        .sum();
    let waiting = statuses.iter().find_map(|s| {
        s["state"]["waiting"]["reason"]
            .as_str()
            .or(s["state"]["terminated"]["reason"].as_str())
    });
    let status = if pod["metadata"]["deletionTimestamp"].is_string() {
        "Terminating".to_owned()
    } else {
        waiting
            .or(pod["status"]["reason"].as_str())
            .or(pod["status"]["phase"].as_str())
            .unwrap_or("Pending")
            .to_owned()
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts.to_string()),
        json!(age(pod, now)),
        json!(or_none(text(&pod["status"]["podIP"]))),
        json!(or_none(text(&pod["spec"]["nodeName"]))),
        json!(or_none(text(&pod["status"]["nominatedNodeName"]))),
        json!("<none>"),
    ]
}

fn node_status(node: &Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| {
            if c["status"] == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        format!("{ready},SchedulingDisabled")
    } else {
        ready.to_owned()
    }
}

fn node_address(node: &Value, kind: &str) -> String {
    let address = node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == kind))
        .map(|x| text(&x["address"]))
        .unwrap_or_default();
    or_none(address)
}

/// ENDPOINTS of an Endpoints object, as upstream's `formatEndpoints`:
/// `ip:port` for each port and ready address, `<none>` without subsets.
fn endpoints(object: &Value) -> String {
    let Some(subsets) = object["subsets"].as_array().filter(|s| !s.is_empty()) else {
        return "<none>".into();
    };
    let mut all = Vec::new();
    for subset in subsets {
        let addresses: Vec<String> = subset["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| text(&a["ip"]))
            .collect();
        match subset["ports"].as_array().filter(|p| !p.is_empty()) {
            None => all.extend(addresses),
            Some(ports) => {
                for port in ports {
                    let port = text(&port["port"]);
                    all.extend(addresses.iter().map(|ip| join_host_port(ip, &port)));
                }
            }
        }
    }
    at_most_three(&all, "")
}

/// `ip:port`, with an IPv6 address in brackets.
fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// PORTS and ENDPOINTS of an EndpointSlice, as upstream's
/// `formatDiscoveryPorts` and `formatDiscoveryEndpoints`.
fn slice_cells(slice: &Value) -> (String, String) {
    let ports: Vec<String> = slice["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| match (&p["port"], &p["name"]) {
            (Value::Number(n), _) => n.to_string(),
            (_, Value::String(name)) => name.clone(),
            _ => "*".into(),
        })
        .collect();
    let addresses: Vec<String> = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| strings(&e["addresses"]))
        .collect();
    (
        at_most_three(&ports, "<unset>"),
        at_most_three(&addresses, "<unset>"),
    )
}

fn count(v: &Value) -> Value {
    json!(v.as_object().map_or(0, |m| m.len()) + v.as_array().map_or(0, Vec::len))
}

/// The cells of `object`'s row, in the order of [`columns`] for its kind.
pub fn cells(kind: &str, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let name = json!(text(&object["metadata"]["name"]));
    let spec = &object["spec"];
    let status = &object["status"];
    let template = &spec["template"]["spec"];
    let mut cells = vec![name];
    let rest: Vec<Value> = match kind {
        "Pod" => pod_cells(object, now),
        "Service" => vec![
            json!(spec["type"].as_str().unwrap_or("ClusterIP")),
            json!(spec["clusterIPs"][0]
                .as_str()
                .or(spec["clusterIP"].as_str())
                .filter(|ip| !ip.is_empty())
                .unwrap_or("<none>")),
            json!(external_ips(object)),
            json!(service_ports(spec)),
            json!(age(object, now)),
            json!(selector(&spec["selector"])),
        ],
        "Deployment" => vec![
            json!(format!(
                "{}/{}",
                status["readyReplicas"].as_i64().unwrap_or(0),
                spec["replicas"].as_i64().unwrap_or(1)
            )),
            int(&status["updatedReplicas"]),
            int(&status["availableReplicas"]),
            json!(age(object, now)),
            json!(containers(template, "name")),
            json!(containers(template, "image")),
            json!(selector(&spec["selector"]["matchLabels"])),
        ],
        "ReplicaSet" | "ReplicationController" => vec![
            json!(spec["replicas"].as_i64().unwrap_or(1)),
            int(&status["replicas"]),
            int(&status["readyReplicas"]),
            json!(age(object, now)),
            json!(containers(template, "name")),
            json!(containers(template, "image")),
            json!(selector(if kind == "ReplicaSet" {
                &spec["selector"]["matchLabels"]
            } else {
                &spec["selector"]
            })),
        ],
        "DaemonSet" => vec![
            int(&status["desiredNumberScheduled"]),
            int(&status["currentNumberScheduled"]),
            int(&status["numberReady"]),
            int(&status["updatedNumberScheduled"]),
            int(&status["numberAvailable"]),
            json!(selector(&template["nodeSelector"])),
            json!(age(object, now)),
            json!(containers(template, "name")),
            json!(containers(template, "image")),
            json!(selector(&spec["selector"]["matchLabels"])),
        ],
        "StatefulSet" => vec![
            json!(format!(
                "{}/{}",
                status["readyReplicas"].as_i64().unwrap_or(0),
                spec["replicas"].as_i64().unwrap_or(1)
            )),
            json!(age(object, now)),
            json!(containers(template, "name")),
            json!(containers(template, "image")),
        ],
        "Node" => vec![
            json!(node_status(object)),
            json!("<none>"),
            json!(age(object, now)),
            json!(text(&status["nodeInfo"]["kubeletVersion"])),
            json!(node_address(object, "InternalIP")),
            json!(node_address(object, "ExternalIP")),
            json!(or_none(text(&status["nodeInfo"]["osImage"]))),
            json!(or_none(text(&status["nodeInfo"]["kernelVersion"]))),
            json!(or_none(text(
                &status["nodeInfo"]["containerRuntimeVersion"]
            ))),
        ],
        "Namespace" => vec![
            json!(status["phase"].as_str().unwrap_or("Active")),
            json!(age(object, now)),
        ],
        "Endpoints" => vec![json!(endpoints(object)), json!(age(object, now))],
        // Upstream's `group/resource/namespace/name` of the holder.
        "IPAddress" => {
            let parent = &object["spec"]["parentRef"];
            let resource = match text(&parent["group"]) {
                group if group.is_empty() => text(&parent["resource"]),
                group => format!("{}.{group}", text(&parent["resource"])),
            };
            let holder = [resource, text(&parent["namespace"]), text(&parent["name"])]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("/");
            vec![json!(holder), json!(age(object, now))]
        }
        "EndpointSlice" => {
            let (ports, endpoints) = slice_cells(object);
            vec![
                json!(text(&object["addressType"])),
                json!(ports),
                json!(endpoints),
                json!(age(object, now)),
            ]
        }
        "Event" => {
            let last = object["lastTimestamp"]
                .as_str()
                .or(object["eventTime"].as_str())
                .or(object["metadata"]["creationTimestamp"].as_str());
            let seen = last
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map_or("<unknown>".into(), |t| {
                    human_duration(now.as_second() - t.as_second())
                });
            let involved = &object["involvedObject"];
            cells.clear();
            cells.push(json!(seen));
            vec![
                json!(text(&object["type"])),
                json!(text(&object["reason"])),
                json!(format!(
                    "{}/{}",
                    text(&involved["kind"]).to_lowercase(),
                    text(&involved["name"])
                )),
                json!(text(&object["message"])),
            ]
        }
        "ConfigMap" => vec![
            json!(
                count(&object["data"]).as_u64().unwrap_or(0)
                    + count(&object["binaryData"]).as_u64().unwrap_or(0)
            ),
            json!(age(object, now)),
        ],
        "Secret" => vec![
            json!(object["type"].as_str().unwrap_or("Opaque")),
            count(&object["data"]),
            json!(age(object, now)),
        ],
        "ServiceAccount" => vec![count(&object["secrets"]), json!(age(object, now))],
        "Lease" => vec![
            json!(or_none(text(&spec["holderIdentity"]))),
            json!(age(object, now)),
        ],
        "Ingress" => {
            let hosts: Vec<String> = spec["rules"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|r| text(&r["host"]))
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let address: Vec<String> = status["loadBalancer"]["ingress"]
                .as_array()
                .map(|i| i.iter().map(|x| text(&x["ip"])).collect())
                .unwrap_or_default();
            let ports = if spec["tls"].as_array().is_some_and(|t| !t.is_empty()) {
                "80, 443"
            } else {
                "80"
            };
            vec![
                json!(or_none(text(&spec["ingressClassName"]))),
                json!(if hosts.is_empty() {
                    "*".to_owned()
                } else {
                    hosts.join(",")
                }),
                json!(address.join(",")),
                json!(ports),
                json!(age(object, now)),
            ]
        }
        _ => vec![json!(age(object, now))],
    };
    cells.extend(rest);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-01-01T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn durations_read_like_kubectl() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
        ];
        for (seconds, shown) in cases {
            assert_eq!(human_duration(seconds), shown, "{seconds}");
        }
    }

    #[test]
    fn an_ip_address_names_its_holder_as_upstream() {
        let address = json!({"metadata": {"name": "10.96.0.1"}, "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "kubernetes"}}});
        assert_eq!(
            cells("IPAddress", &address, now())[1],
            "services/default/kubernetes"
        );
    }

    #[test]
    fn every_kind_has_one_cell_per_column() {
        let object =
            json!({"metadata": {"name": "x", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        for kind in [
            "Pod",
            "Service",
            "Deployment",
            "ReplicaSet",
            "ReplicationController",
            "DaemonSet",
            "StatefulSet",
            "Node",
            "Namespace",
            "Endpoints",
            "EndpointSlice",
            "Event",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "Lease",
            "Ingress",
            "IPAddress",
            "Other",
        ] {
            assert_eq!(
                cells(kind, &object, now()).len(),
                columns(kind).len(),
                "{kind}"
            );
        }
    }

    #[test]
    fn rows_show_what_kubectl_shows() {
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": "2026-01-01T00:58:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "skiff-node-1"},
            "status": {"phase": "Running", "podIP": "10.244.1.5",
                       "containerStatuses": [{"ready": true, "restartCount": 1}, {"ready": false, "restartCount": 2}]}});
        assert_eq!(
            cells("Pod", &pod, now())[..6],
            [
                json!("web-1"),
                json!("1/2"),
                json!("Running"),
                json!("3"),
                json!("2m"),
                json!("10.244.1.5")
            ]
        );
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.20",
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}], "selector": {"app": "web"}}});
        let row = cells("Service", &svc, now());
        assert_eq!(
            row[..5],
            [
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.20"),
                json!("<none>"),
                json!("80:30080/TCP")
            ]
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(cells("Service", &lb, now())[3], json!("<pending>"));
        let deploy = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            cells("Deployment", &deploy, now())[..4],
            [json!("web"), json!("2/3"), json!(3), json!(2)]
        );
    }

    #[test]
    fn services_print_as_upstreams_printers() {
        let svc = |spec: Value, status: Value| {
            let object = json!({"metadata": {"name": "s"}, "spec": spec, "status": status});
            cells("Service", &object, now())
        };
        let headless = svc(
            json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
            json!({}),
        );
        assert_eq!(
            headless[2..5],
            [json!("None"), json!("<none>"), json!("<none>")]
        );
        let unallocated = svc(
            json!({"type": "ClusterIP", "ports": [{"port": 53, "protocol": "UDP"}]}),
            json!({}),
        );
        assert_eq!(
            unallocated[2..5],
            [json!("<none>"), json!("<none>"), json!("53/UDP")]
        );
        let external = svc(
            json!({"type": "NodePort", "externalIPs": ["1.2.3.4", "5.6.7.8"]}),
            json!({}),
        );
        assert_eq!(external[3], json!("1.2.3.4,5.6.7.8"));
        let lb = svc(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.30"], "externalIPs": ["9.9.9.9"],
                   "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}, {"port": 443, "nodePort": 31001, "protocol": "TCP"}]}),
            json!({"loadBalancer": {"ingress": [{"ip": "172.31.255.2"}, {"hostname": "lb.example"}, {"ip": "172.31.255.2"}]}}),
        );
        assert_eq!(
            lb[2..5],
            [
                json!("10.96.0.30"),
                json!("172.31.255.2,lb.example,9.9.9.9"),
                json!("80:31000/TCP,443:31001/TCP")
            ]
        );
        let name = svc(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
        );
        assert_eq!(name[2..4], [json!("<none>"), json!("db.example.com")]);
        assert_eq!(
            svc(json!({"selector": {"tier": "fe", "app": "web"}}), json!({}))[6],
            json!("app=web,tier=fe")
        );
    }

    #[test]
    fn endpoints_and_slices_print_as_upstreams_printers() {
        let ep = |subsets: Value| {
            cells(
                "Endpoints",
                &json!({"metadata": {"name": "e"}, "subsets": subsets}),
                now(),
            )[1]
            .clone()
        };
        assert_eq!(ep(json!([])), json!("<none>"));
        // Only not-ready addresses: an empty cell, not <none>.
        assert_eq!(
            ep(json!([{"notReadyAddresses": [{"ip": "10.244.1.2"}], "ports": [{"port": 80}]}])),
            json!("")
        );
        // Ports outer, addresses inner; three at most.
        let two = json!([{"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.2.2"}],
                          "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]}]);
        assert_eq!(
            ep(two),
            json!("10.244.1.2:80,10.244.2.2:80,10.244.1.2:443 + 1 more...")
        );
        assert_eq!(
            ep(json!([{"addresses": [{"ip": "10.244.1.2"}]}])),
            json!("10.244.1.2")
        );
        let slice = |ports: Value, endpoints: Value| {
            cells(
                "EndpointSlice",
                &json!({"metadata": {"name": "e"}, "addressType": "IPv4",
                "ports": ports, "endpoints": endpoints}),
                now(),
            )
        };
        let empty = slice(json!(null), json!([]));
        assert_eq!(
            empty[1..4],
            [json!("IPv4"), json!("<unset>"), json!("<unset>")]
        );
        let full = slice(
            json!([{"port": 8080}, {"name": "metrics"}, {}, {"port": 9}]),
            json!([{"addresses": ["10.244.1.2"]}, {"addresses": ["10.244.1.3"]}, {"addresses": ["10.244.1.4"]}, {"addresses": ["10.244.1.5"]}]),
        );
        assert_eq!(
            full[2..4],
            [
                json!("8080,metrics,* + 1 more..."),
                json!("10.244.1.2,10.244.1.3,10.244.1.4 + 1 more...")
            ]
        );
    }
}
