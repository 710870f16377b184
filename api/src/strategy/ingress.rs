//! Ingresses: their status (the load balancer's addresses) behind
//! `/status`, written by the ingress controller.

use serde_json::{json, Value};

use super::Strategy;

/// The Ingress strategy.
#[derive(Debug, Clone, Copy)]
pub struct Ingress;

impl Strategy for Ingress {
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
