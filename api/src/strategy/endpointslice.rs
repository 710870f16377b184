//! EndpointSlices: their ports' protocol is TCP unless they say otherwise.

use serde_json::Value;

use super::Strategy;
use crate::defaults::protocols;

/// The EndpointSlice strategy.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSlice;

impl Strategy for EndpointSlice {
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
