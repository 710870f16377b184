//! Endpoints: their ports' protocol is TCP unless they say otherwise.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::{each, protocols};
use crate::table::{age, at_most_three, col, join_host_port, name, text, Column, S};

/// The Endpoints strategy.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints;

/// ENDPOINTS, as upstream's `formatEndpoints`: `ip:port` for each port
/// and ready address, `<none>` without subsets.
fn addresses(object: &Value) -> String {
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

impl Strategy for Endpoints {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[col("Name", S, 0), col("Endpoints", S, 0), col("Age", S, 0)];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![name(object), json!(addresses(object)), age(object, now)]
    }

    fn defaults(&self, object: &mut Value) {
        each(object, "subsets", |subset| protocols(subset, "ports"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::conformance::{check, Case};
    use serde_json::json;

    #[test]
    fn conformance() {
        check(Case {
            strategy: &Endpoints,
            object: json!({"metadata": {"name": "e"}, "subsets": [{"ports": [{"port": 80}]}, "x"]}),
            resets_status: false,
            status_subresource: false,
            spec_update: json!({"metadata": {"labels": {"a": "b"}}}),
            immutable: vec![],
        });
        let mut endpoints = json!({"subsets": [{"ports": [{"port": 80}]}]});
        Endpoints.defaults(&mut endpoints);
        assert_eq!(endpoints["subsets"][0]["ports"][0]["protocol"], "TCP");
    }
}
