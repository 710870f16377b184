//! Server-side Tables: what every kind's printer (its strategy's
//! `columns` and `cells`, as upstream's printers) is made of — columns,
//! ages as kubectl prints them, and the cells several kinds share.

use serde_json::{json, Value};

/// One column: its name (kubectl upper-cases it), type and priority (0 is
/// always shown, 1 only with `-o wide`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The column's name.
    pub name: &'static str,
    /// `string`, `integer` or `date`.
    pub kind: &'static str,
    /// 0: shown by default; 1: shown with `-o wide`.
    pub priority: u8,
}

/// A column.
pub(crate) const fn col(name: &'static str, kind: &'static str, priority: u8) -> Column {
    Column {
        name,
        kind,
        priority,
    }
}

/// A `string` column.
pub(crate) const S: &str = "string";
/// An `integer` column.
pub(crate) const I: &str = "integer";

/// The Table of a kind without a printer of its own.
pub(crate) const NAME_AGE: &[Column] = &[col("Name", S, 0), col("Age", S, 0)];

/// The `-o wide` columns every workload ends with.
pub(crate) const WORKLOAD: [Column; 3] = [
    col("Containers", S, 1),
    col("Images", S, 1),
    col("Selector", S, 1),
];

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

/// A value as its text: a string as it is, nothing as empty.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An integer cell, 0 when absent.
pub(crate) fn int(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

/// `<none>` for an empty cell.
pub(crate) fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// `key=value,...` of a label map, `<none>` when empty.
pub(crate) fn selector(map: &Value) -> String {
    let pairs: Vec<String> = map
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", text(v))).collect())
        .unwrap_or_default();
    or_none(pairs.join(","))
}

/// The NAME cell.
pub(crate) fn name(object: &Value) -> Value {
    json!(text(&object["metadata"]["name"]))
}

/// The AGE cell: since `creationTimestamp`.
pub(crate) fn age(object: &Value, now: jiff::Timestamp) -> Value {
    json!(since(object["metadata"]["creationTimestamp"].as_str(), now))
}

/// How long ago the time `at` was, as kubectl prints it.
pub(crate) fn since(at: Option<&str>, now: jiff::Timestamp) -> String {
    match at.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(then) => human_duration(now.as_second() - then.as_second()),
        None => "<unknown>".into(),
    }
}

/// The CONTAINERS, IMAGES and SELECTOR cells of a workload (see
/// [`WORKLOAD`]) whose selector is the label map `selector`.
pub(crate) fn workload(object: &Value, selector_map: &Value) -> [Value; 3] {
    let containers = object["spec"]["template"]["spec"]["containers"].as_array();
    let each = |field: &str| {
        let values: Vec<String> = containers
            .into_iter()
            .flatten()
            .map(|c| text(&c[field]))
            .collect();
        json!(values.join(","))
    };
    [each("name"), each("image"), json!(selector(selector_map))]
}

/// The columns of ReplicaSets and ReplicationControllers.
pub(crate) const REPLICAS: &[Column] = &[
    col("Name", S, 0),
    col("Desired", I, 0),
    col("Current", I, 0),
    col("Ready", I, 0),
    col("Age", S, 0),
    WORKLOAD[0],
    WORKLOAD[1],
    WORKLOAD[2],
];

/// READY of a Deployment or StatefulSet: `ready/desired`.
pub(crate) fn ready_of_desired(object: &Value) -> Value {
    json!(format!(
        "{}/{}",
        object["status"]["readyReplicas"].as_i64().unwrap_or(0),
        object["spec"]["replicas"].as_i64().unwrap_or(1)
    ))
}

/// The row of a ReplicaSet or ReplicationController, whose selector is
/// the label map `selector_map`.
pub(crate) fn replicas_row(
    object: &Value,
    selector_map: &Value,
    now: jiff::Timestamp,
) -> Vec<Value> {
    let (spec, status) = (&object["spec"], &object["status"]);
    let mut cells = vec![
        name(object),
        json!(spec["replicas"].as_i64().unwrap_or(1)),
        int(&status["replicas"]),
        int(&status["readyReplicas"]),
        age(object, now),
    ];
    cells.extend(workload(object, selector_map));
    cells
}

/// The strings of an array of strings.
pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(text).collect()
}

/// The first three of `list`, then how many more, as upstream's printers
/// shorten lists; `empty` when there is nothing.
pub(crate) fn at_most_three(list: &[String], empty: &str) -> String {
    match list.len() {
        0 => empty.into(),
        1..=3 => list.join(","),
        n => format!("{} + {} more...", list[..3].join(","), n - 3),
    }
}

/// `ip:port`, with an IPv6 address in brackets.
pub(crate) fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// How many entries a map or list has.
pub(crate) fn count(v: &Value) -> usize {
    v.as_object().map_or(0, |m| m.len()) + v.as_array().map_or(0, Vec::len)
}

/// A boolean field's selectable value: `false` when absent.
pub(crate) fn flag(v: &Value) -> String {
    v.as_bool().unwrap_or(false).to_string()
}

/// An integer field's selectable value: `0` when absent.
pub(crate) fn number(v: &Value) -> String {
    v.as_i64().unwrap_or(0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    /// The row of a `kind` object, as its strategy prints it.
    fn cells(kind: &str, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        kind_of(kind).strategy.cells(object, now)
    }

    fn kind_of(kind: &str) -> crate::ResourceType {
        let registry = Registry::builtin();
        let found = registry.types().iter().find(|t| t.kind == kind);
        found.expect("a built-in kind").clone()
    }

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
        for kind in Registry::builtin().types() {
            let strategy = kind.strategy;
            assert_eq!(
                strategy.cells(&object, now()).len(),
                strategy.columns().len(),
                "{}",
                kind.kind
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
