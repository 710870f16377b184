//! ConfigMaps: written whole; their keys and size checked as upstream's
//! `ValidateConfigMap`.

use serde_json::Value;

use super::Strategy;
use crate::specs::Problem;

/// The ConfigMap strategy.
#[derive(Debug, Clone, Copy)]
pub struct ConfigMap;

impl Strategy for ConfigMap {
    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::config_map(object)
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
            strategy: &ConfigMap,
            object: json!({"metadata": {"name": "c"}, "data": {"k": "v"}}),
            resets_status: false,
            status_subresource: false,
            spec_update: json!({"data": {"k": "w"}}),
            immutable: vec![],
        });
        let bad = json!({"metadata": {"name": "c"}, "data": {"a b": "v"}});
        assert_eq!(ConfigMap.validate(&bad)[0].1, "data[a b]");
    }
}
