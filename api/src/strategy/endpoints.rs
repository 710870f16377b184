//! Endpoints: their ports' protocol is TCP unless they say otherwise.

use serde_json::Value;

use super::Strategy;
use crate::defaults::{each, protocols};

/// The Endpoints strategy.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints;

impl Strategy for Endpoints {
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
