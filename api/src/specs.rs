//! Validation of what objects ask for beyond their metadata, as upstream
//! validates it for the kinds served: required fields, port ranges and
//! protocols, container names, workload selectors that select their own
//! template. Each problem is a (reason, field path, message) in upstream's
//! words.

use serde_json::Value;

use crate::validation::label_error;

/// One problem: upstream's cause reason, the field path, the message.
pub type Problem = (&'static str, String, String);

fn required(field: String) -> Problem {
    ("FieldValueRequired", field, "Required value".into())
}

fn invalid(field: String, value: &Value, why: &str) -> Problem {
    (
        "FieldValueInvalid",
        field,
        format!("Invalid value: {value}: {why}"),
    )
}

fn port_range(value: &Value, field: String, zero_ok: bool, problems: &mut Vec<Problem>) {
    let Some(port) = value.as_i64() else { return };
    let low = if zero_ok { 0 } else { 1 };
    if !(low..=65535).contains(&port) {
        problems.push(invalid(
            field,
            value,
            "must be between 1 and 65535, inclusive",
        ));
    }
}

fn protocol(value: &Value, field: String, problems: &mut Vec<Problem>) {
    if let Some(p) = value.as_str() {
        if !matches!(p, "TCP" | "UDP" | "SCTP") {
            problems.push((
                "FieldValueNotSupported",
                field,
                format!("Unsupported value: \"{p}\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
            ));
        }
    }
}

/// A pod spec at `path` (`spec`, `spec.template.spec`).
fn pod_spec(spec: &Value, path: &str, problems: &mut Vec<Problem>) {
    let containers = spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if containers.is_empty() {
        problems.push(required(format!("{path}.containers")));
    }
    for (list, items) in [
        ("containers", containers),
        (
            "initContainers",
            spec["initContainers"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default(),
        ),
    ] {
        for (i, c) in items.iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            match c["name"].as_str() {
                None | Some("") => problems.push(required(format!("{at}.name"))),
                Some(name) => {
                    if let Some(e) = label_error(name) {
                        problems.push(invalid(format!("{at}.name"), &c["name"], &e));
                    }
                }
            }
            if c["image"].as_str().is_none_or(str::is_empty) {
                problems.push(required(format!("{at}.image")));
            }
            for (j, port) in c["ports"].as_array().into_iter().flatten().enumerate() {
                let at = format!("{at}.ports[{j}]");
                if port["containerPort"].is_null() {
                    problems.push(required(format!("{at}.containerPort")));
                }
                port_range(
                    &port["containerPort"],
                    format!("{at}.containerPort"),
                    false,
                    problems,
                );
                port_range(&port["hostPort"], format!("{at}.hostPort"), true, problems);
                protocol(&port["protocol"], format!("{at}.protocol"), problems);
            }
        }
    }
}

/// A workload's selector, template and replicas.
fn workload(spec: &Value, map_selector: bool, problems: &mut Vec<Problem>) {
    let selector = &spec["selector"];
    let labels = spec["template"]["metadata"]["labels"].as_object();
    let empty = selector.as_object().is_none_or(|s| s.is_empty());
    if empty && !map_selector {
        problems.push(required("spec.selector".into()));
    }
    let pairs = if map_selector {
        selector.as_object()
    } else {
        selector["matchLabels"].as_object()
    };
    let mismatch = pairs
        .into_iter()
        .flatten()
        .any(|(k, v)| labels.and_then(|l| l.get(k)) != Some(v));
    if !empty && mismatch {
        problems.push(invalid(
            "spec.template.metadata.labels".into(),
            &spec["template"]["metadata"]["labels"],
            "`selector` does not match template `labels`",
        ));
    }
    if spec["replicas"].as_i64().is_some_and(|r| r < 0) {
        problems.push(invalid(
            "spec.replicas".into(),
            &spec["replicas"],
            "must be greater than or equal to 0",
        ));
    }
    pod_spec(&spec["template"]["spec"], "spec.template.spec", problems);
}

fn service(spec: &Value, problems: &mut Vec<Problem>) {
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    if !matches!(
        kind,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        problems.push((
            "FieldValueNotSupported",
            "spec.type".into(),
            format!("Unsupported value: \"{kind}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
    }
    let ports = spec["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let headless = spec["clusterIP"] == "None";
    if ports.is_empty() && kind != "ExternalName" && !headless {
        problems.push(required("spec.ports".into()));
    }
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        if port["port"].is_null() {
            problems.push(required(format!("{at}.port")));
        }
        port_range(&port["port"], format!("{at}.port"), false, problems);
        port_range(
            &port["targetPort"],
            format!("{at}.targetPort"),
            false,
            problems,
        );
        port_range(&port["nodePort"], format!("{at}.nodePort"), true, problems);
        protocol(&port["protocol"], format!("{at}.protocol"), problems);
        if ports.len() > 1 && port["name"].as_str().is_none_or(str::is_empty) {
            problems.push(required(format!("{at}.name")));
        }
    }
    if kind == "ExternalName" && spec["externalName"].as_str().is_none_or(str::is_empty) {
        problems.push(required("spec.externalName".into()));
    }
}

/// The problems of a `kind` object's spec.
pub fn problems(kind: &str, object: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    let spec = &object["spec"];
    match kind {
        "Pod" => pod_spec(spec, "spec", &mut problems),
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" => {
            workload(spec, false, &mut problems)
        }
        "ReplicationController" => workload(spec, true, &mut problems),
        "Service" => service(spec, &mut problems),
        _ => {}
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|(_, f, _)| f.as_str()).collect()
    }

    #[test]
    fn pods_need_containers_with_names_images_and_sane_ports() {
        assert_eq!(
            fields(&problems("Pod", &json!({"spec": {}}))),
            ["spec.containers"]
        );
        let pod = json!({"spec": {"containers": [
            {"name": "Web_1", "ports": [{"containerPort": 70000, "hostPort": 0, "protocol": "HTTP"}]},
        ]}});
        let found = problems("Pod", &pod);
        assert_eq!(
            fields(&found),
            [
                "spec.containers[0].name",
                "spec.containers[0].image",
                "spec.containers[0].ports[0].containerPort",
                "spec.containers[0].ports[0].protocol"
            ]
        );
        assert_eq!(
            found[2].2,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        let fine = json!({"spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}});
        assert!(problems("Pod", &fine).is_empty());
    }

    #[test]
    fn workloads_select_their_own_template() {
        let deployment = |selector: Value| {
            json!({"spec": {"replicas": 1, "selector": selector, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
        };
        assert!(problems(
            "Deployment",
            &deployment(json!({"matchLabels": {"app": "web"}}))
        )
        .is_empty());
        assert_eq!(
            fields(&problems("Deployment", &deployment(json!({})))),
            ["spec.selector"]
        );
        let found = problems(
            "ReplicaSet",
            &deployment(json!({"matchLabels": {"app": "db"}})),
        );
        assert_eq!(
            found[0].2,
            "Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`"
        );
        assert!(problems("ReplicationController", &deployment(json!({"app": "web"}))).is_empty());
        assert!(
            problems("ReplicationController", &deployment(json!({}))).is_empty(),
            "an RC's selector defaults from its template"
        );
    }

    #[test]
    fn services_need_ports_in_range() {
        assert_eq!(
            fields(&problems("Service", &json!({"spec": {}}))),
            ["spec.ports"]
        );
        assert!(problems("Service", &json!({"spec": {"clusterIP": "None"}})).is_empty());
        let two = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 99999}, {"port": 0, "targetPort": "http"}]}});
        assert_eq!(
            fields(&problems("Service", &two)),
            [
                "spec.ports[0].nodePort",
                "spec.ports[0].name",
                "spec.ports[1].port",
                "spec.ports[1].name"
            ]
        );
        assert_eq!(
            fields(&problems(
                "Service",
                &json!({"spec": {"type": "ExternalName"}})
            )),
            ["spec.externalName"]
        );
    }
}
