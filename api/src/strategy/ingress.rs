//! Ingresses: their status (the load balancer's addresses) behind
//! `/status`, written by the ingress controller.

use serde_json::{json, Value};

use super::Strategy;
use crate::table::{age, col, name, or_none, text, Column, S};

/// The Ingress strategy.
#[derive(Debug, Clone, Copy)]
pub struct Ingress;

impl Strategy for Ingress {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Name", S, 0),
            col("Class", S, 0),
            col("Hosts", S, 0),
            col("Address", S, 0),
            col("Ports", S, 0),
            col("Age", S, 0),
        ];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &object["spec"];
        let hosts: Vec<String> = spec["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| text(&r["host"]))
            .filter(|h| !h.is_empty())
            .collect();
        let address: Vec<String> = object["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| text(&x["ip"]))
            .collect();
        let ports = if spec["tls"].as_array().is_some_and(|t| !t.is_empty()) {
            "80, 443"
        } else {
            "80"
        };
        vec![
            name(object),
            json!(or_none(text(&spec["ingressClassName"]))),
            json!(if hosts.is_empty() {
                "*".to_owned()
            } else {
                hosts.join(",")
            }),
            json!(address.join(",")),
            json!(ports),
            age(object, now),
        ]
    }

    fn initial_status(&self) -> Option<Value> {
        Some(json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::conformance::{check, Case};

    #[test]
    fn conformance() {
        check(Case {
            strategy: &Ingress,
            object: json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "a"}, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
            resets_status: true,
            status_subresource: true,
            spec_update: json!({"spec": {"ingressClassName": "b"}}),
            immutable: vec![],
        });
    }
}
