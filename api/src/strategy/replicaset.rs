//! ReplicaSets: one replica by default, their status behind `/status`,
//! their selector immutable.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::{child, default, template};
use crate::immutable::Violation;
use crate::specs::Problem;
use crate::table::{number, replicas_row, Column, REPLICAS};

/// The ReplicaSet strategy.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaSet;

impl Strategy for ReplicaSet {
    fn columns(&self) -> &'static [Column] {
        REPLICAS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        replicas_row(object, &object["spec"]["selector"]["matchLabels"], now)
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
        if let Some(spec) = child(object, "spec") {
            default(spec, "replicas", json!(1));
            template(spec);
        }
    }

    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::replica_set(object)
    }

    fn validate_update(&self, old: &Value, new: &Value) -> Vec<Violation> {
        crate::immutable::selector(old, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::conformance::{apps_workload, check, workload};

    #[test]
    fn conformance() {
        check(apps_workload(
            &ReplicaSet,
            workload(json!({"matchLabels": {"app": "a"}})),
            json!({"spec": {"replicas": 0}}),
        ));
    }
}
