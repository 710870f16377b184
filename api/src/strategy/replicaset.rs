//! ReplicaSets: one replica by default, their status behind `/status`,
//! their selector immutable.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::{child, default, template};
use crate::immutable::Violation;
use crate::specs::Problem;

/// The ReplicaSet strategy.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaSet;

impl Strategy for ReplicaSet {
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
