//! ReplicationControllers: a selector that is a plain label map, defaulted
//! from the template's labels; their status behind `/status`.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::{child, default, template};
use crate::specs::Problem;
use crate::table::{number, replicas_row, Column, REPLICAS};

/// The ReplicationController strategy.
#[derive(Debug, Clone, Copy)]
pub struct ReplicationController;

impl Strategy for ReplicationController {
    fn columns(&self) -> &'static [Column] {
        REPLICAS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        replicas_row(object, &object["spec"]["selector"], now)
    }

    fn fields(&self) -> &'static [&'static str] {
        &["status.replicas"]
    }

    fn field(&self, object: &Value, field: &str) -> Option<String> {
        (field == "status.replicas").then(|| number(&object["status"]["replicas"]))
    }

    fn initial_status(&self) -> Option<Value> {
        Some(json!({}))
    }

    fn defaults(&self, object: &mut Value) {
        let Some(spec) = child(object, "spec") else {
            return;
        };
        default(spec, "replicas", json!(1));
        let labels = spec["template"]["metadata"]["labels"].clone();
        if !labels.is_null() {
            default(spec, "selector", labels);
        }
        template(spec);
    }

    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::replication_controller(object)
    }

    /// Its selector is a label map: `matchLabels` alone.
    fn selector(&self, object: &Value) -> Value {
        json!({"matchLabels": object["spec"]["selector"]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::conformance::{check, Case};

    #[test]
    fn conformance() {
        let mut rc = crate::strategy::conformance::workload(Value::Null);
        rc["spec"].as_object_mut().unwrap().remove("selector");
        check(Case {
            strategy: &ReplicationController,
            object: rc,
            resets_status: true,
            status_subresource: true,
            spec_update: json!({"spec": {"replicas": 5}}),
            immutable: vec![],
        });
        let mut defaulted = json!({"spec": {"template": {"metadata": {"labels": {"app": "a"}}}}});
        ReplicationController.defaults(&mut defaulted);
        assert_eq!(
            ReplicationController.selector(&defaulted),
            json!({"matchLabels": {"app": "a"}})
        );
    }
}
