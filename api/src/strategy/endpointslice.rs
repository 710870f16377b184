//! EndpointSlices: their ports' protocol is TCP unless they say otherwise.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::protocols;
use crate::table::{age, at_most_three, col, name, strings, text, Column, S};

/// The EndpointSlice strategy.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSlice;

impl Strategy for EndpointSlice {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Name", S, 0),
            col("AddressType", S, 0),
            col("Ports", S, 0),
            col("Endpoints", S, 0),
            col("Age", S, 0),
        ];
        COLUMNS
    }

    /// PORTS and ENDPOINTS as upstream's `formatDiscoveryPorts` and
    /// `formatDiscoveryEndpoints`.
    fn cells(&self, slice: &Value, now: jiff::Timestamp) -> Vec<Value> {
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
        vec![
            name(slice),
            json!(text(&slice["addressType"])),
            json!(at_most_three(&ports, "<unset>")),
            json!(at_most_three(&addresses, "<unset>")),
            age(slice, now),
        ]
    }

    fn defaults(&self, object: &mut Value) {
        protocols(object, "ports");
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
            strategy: &EndpointSlice,
            object: json!({"metadata": {"name": "s"}, "addressType": "IPv4", "ports": [{"port": 80}]}),
            resets_status: false,
            status_subresource: false,
            spec_update: json!({"endpoints": [{"addresses": ["10.0.0.1"]}]}),
            immutable: vec![],
        });
    }
}
