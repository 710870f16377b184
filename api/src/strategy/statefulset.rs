//! StatefulSets: ordered pod management and retained claims by default,
//! their status behind `/status`, their selector immutable.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::{child, default, template};
use crate::immutable::Violation;
use crate::specs::Problem;
use crate::table::{age, col, name, ready_of_desired, workload, Column, S, WORKLOAD};

/// The StatefulSet strategy.
#[derive(Debug, Clone, Copy)]
pub struct StatefulSet;

impl Strategy for StatefulSet {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Name", S, 0),
            col("Ready", S, 0),
            col("Age", S, 0),
            WORKLOAD[0],
            WORKLOAD[1],
        ];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let mut cells = vec![name(object), ready_of_desired(object), age(object, now)];
        // No SELECTOR column for StatefulSets upstream.
        cells.extend(workload(object, &Value::Null).into_iter().take(2));
        cells
    }

    fn initial_status(&self) -> Option<Value> {
        Some(json!({}))
    }

    fn defaults(&self, object: &mut Value) {
        let Some(spec) = child(object, "spec") else {
            return;
        };
        default(spec, "replicas", json!(1));
        default(spec, "revisionHistoryLimit", json!(10));
        default(spec, "podManagementPolicy", json!("OrderedReady"));
        if let Some(strategy) = child(spec, "updateStrategy") {
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                if let Some(rolling) = child(strategy, "rollingUpdate") {
                    default(rolling, "partition", json!(0));
                }
            }
        }
        if let Some(retention) = child(spec, "persistentVolumeClaimRetentionPolicy") {
            default(retention, "whenDeleted", json!("Retain"));
            default(retention, "whenScaled", json!("Retain"));
        }
        template(spec);
    }

    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::stateful_set(object)
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
            &StatefulSet,
            workload(json!({"matchLabels": {"app": "a"}})),
            json!({"spec": {"replicas": 2}}),
        ));
    }
}
