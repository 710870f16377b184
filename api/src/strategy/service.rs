//! Services: defaulted as upstream's, their status behind `/status`, and
//! their ClusterIP and node ports settled from the allocators (the
//! decision here, the reservation in the apiserver).

use serde_json::{json, Value};

use super::{keep_status, Strategy};
use crate::defaults::{child, default, each};
use crate::services::{needs_health_port, Held, Settled};
use crate::specs::Problem;
use crate::table::{age, col, name, or_none, selector, strings, text, Column, S};

/// The Service strategy.
#[derive(Debug, Clone, Copy)]
pub struct Service;

/// PORT(S): `port[:nodePort]/protocol` each.
fn ports(spec: &Value) -> String {
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
            let ingress: std::collections::BTreeSet<String> = object["status"]["loadBalancer"]
                ["ingress"]
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

impl Strategy for Service {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Name", S, 0),
            col("Type", S, 0),
            col("Cluster-IP", S, 0),
            col("External-IP", S, 0),
            col("Port(s)", S, 0),
            col("Age", S, 0),
            col("Selector", S, 1),
        ];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &object["spec"];
        vec![
            name(object),
            json!(spec["type"].as_str().unwrap_or("ClusterIP")),
            json!(spec["clusterIPs"][0]
                .as_str()
                .or(spec["clusterIP"].as_str())
                .filter(|ip| !ip.is_empty())
                .unwrap_or("<none>")),
            json!(external_ips(object)),
            json!(ports(spec)),
            age(object, now),
            json!(selector(&spec["selector"])),
        ]
    }

    fn fields(&self) -> &'static [&'static str] {
        &["spec.clusterIP", "spec.type"]
    }

    fn initial_status(&self) -> Option<Value> {
        Some(json!({"loadBalancer": {}}))
    }

    fn prepare_for_update(&self, old: &Value, new: &mut Value) {
        keep_status(old, new);
        drop_type_dependent(&old["spec"], &mut new["spec"]);
    }

    fn defaults(&self, object: &mut Value) {
        let Some(spec) = child(object, "spec") else {
            return;
        };
        default(spec, "type", json!("ClusterIP"));
        default(spec, "sessionAffinity", json!("None"));
        default(spec, "internalTrafficPolicy", json!("Cluster"));
        if matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
            default(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if spec["sessionAffinity"] == "ClientIP" {
            if let Some(client) =
                child(spec, "sessionAffinityConfig").and_then(|c| child(c, "clientIP"))
            {
                default(client, "timeoutSeconds", json!(10800));
            }
        }
        each(spec, "ports", |port| {
            default(port, "protocol", json!("TCP"));
            let target = port["port"].clone();
            default(port, "targetPort", target);
        });
    }

    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::service(object)
    }

    fn settle(&self, current: Option<&Value>, next: &mut Value, reserved: &Held) -> Settled {
        crate::services::settle(current, next, reserved)
    }

    fn held(&self, object: &Value) -> Held {
        Held::of(object)
    }
}

/// Upstream's `dropTypeDependentFields`: a type change to one that has no
/// use for `externalTrafficPolicy` (or a health-check node port) drops it
/// when the client left it as it was, before validation sees it.
fn drop_type_dependent(old: &Value, new: &mut Value) {
    let external =
        |spec: &Value| matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"));
    let unchanged = |field: &str| new[field] == old[field];
    let drop_health =
        needs_health_port(old) && !needs_health_port(new) && unchanged("healthCheckNodePort");
    let drop_policy = external(old) && !external(new) && unchanged("externalTrafficPolicy");
    if let Some(spec) = new.as_object_mut() {
        if drop_health {
            spec.remove("healthCheckNodePort");
        }
        if drop_policy {
            spec.remove("externalTrafficPolicy");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::conformance::{check, Case};

    #[test]
    fn conformance() {
        check(Case {
            strategy: &Service,
            object: json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
            resets_status: true,
            status_subresource: true,
            spec_update: json!({"spec": {"selector": {"app": "web"}}}),
            immutable: vec![],
        });
    }

    #[test]
    fn defaults_as_upstream() {
        let mut svc = json!({"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
        Service.defaults(&mut svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(svc["spec"]["ports"][1]["targetPort"], "dns");
        // Back to ClusterIP: the policy the client left goes, one it set
        // stays (for validation to refuse).
        let lb = json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30001}});
        let mut cluster = json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30001}});
        Service.prepare_for_update(&lb, &mut cluster);
        assert_eq!(cluster["spec"], json!({"type": "ClusterIP"}));
        let mut changed =
            json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Cluster"}});
        Service.prepare_for_update(&lb, &mut changed);
        assert_eq!(changed["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        let mut wrong = json!({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": 3, "ports": ["x"]}});
        Service.defaults(&mut wrong);
        assert_eq!(wrong["spec"]["sessionAffinityConfig"], 3);
        assert_eq!(
            Service.settle(None, &mut json!({"spec": "x"}), &Held::default()),
            Settled::Done
        );
    }
}
