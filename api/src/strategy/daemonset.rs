//! DaemonSets: rolling updates of one node at a time by default, their
//! status behind `/status`, their selector immutable.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::{child, default, template};
use crate::immutable::Violation;
use crate::specs::Problem;
use crate::table::{age, col, int, name, selector, workload, Column, I, S, WORKLOAD};

/// The DaemonSet strategy.
#[derive(Debug, Clone, Copy)]
pub struct DaemonSet;

impl Strategy for DaemonSet {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Name", S, 0),
            col("Desired", I, 0),
            col("Current", I, 0),
            col("Ready", I, 0),
            col("Up-to-date", I, 0),
            col("Available", I, 0),
            col("Node Selector", S, 0),
            col("Age", S, 0),
            WORKLOAD[0],
            WORKLOAD[1],
            WORKLOAD[2],
        ];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let status = &object["status"];
        let mut cells = vec![
            name(object),
            int(&status["desiredNumberScheduled"]),
            int(&status["currentNumberScheduled"]),
            int(&status["numberReady"]),
            int(&status["updatedNumberScheduled"]),
            int(&status["numberAvailable"]),
            json!(selector(
                &object["spec"]["template"]["spec"]["nodeSelector"]
            )),
            age(object, now),
        ];
        cells.extend(workload(object, &object["spec"]["selector"]["matchLabels"]));
        cells
    }

    fn initial_status(&self) -> Option<Value> {
        Some(json!({}))
    }

    fn defaults(&self, object: &mut Value) {
        let Some(spec) = child(object, "spec") else {
            return;
        };
        default(spec, "revisionHistoryLimit", json!(10));
        if let Some(strategy) = child(spec, "updateStrategy") {
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                if let Some(rolling) = child(strategy, "rollingUpdate") {
                    default(rolling, "maxUnavailable", json!(1));
                    default(rolling, "maxSurge", json!(0));
                }
            }
        }
        template(spec);
    }

    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::daemon_set(object)
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
        let mut ds = workload(json!({"matchLabels": {"app": "a"}}));
        ds["spec"].as_object_mut().unwrap().remove("replicas");
        check(apps_workload(
            &DaemonSet,
            ds,
            json!({"spec": {"minReadySeconds": 5}}),
        ));
    }
}
