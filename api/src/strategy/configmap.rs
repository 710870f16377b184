//! ConfigMaps: written whole; their keys and size checked as upstream's
//! `ValidateConfigMap`.

use serde_json::{json, Value};

use super::Strategy;
use crate::specs::Problem;
use crate::table::{age, col, count, name, Column, I, S};

/// The ConfigMap strategy.
#[derive(Debug, Clone, Copy)]
pub struct ConfigMap;

impl Strategy for ConfigMap {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[col("Name", S, 0), col("Data", I, 0), col("Age", S, 0)];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let data = count(&object["data"]) + count(&object["binaryData"]);
        vec![name(object), json!(data), age(object, now)]
    }

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
