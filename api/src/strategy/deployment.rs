//! Deployments: defaulted as upstream's (rolling updates of 25%), their
//! status behind `/status`, their selector immutable.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::{child, default, template};
use crate::immutable::Violation;
use crate::specs::Problem;
use crate::table::{age, col, int, name, ready_of_desired, workload, Column, I, S, WORKLOAD};

/// The Deployment strategy.
#[derive(Debug, Clone, Copy)]
pub struct Deployment;

impl Strategy for Deployment {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Name", S, 0),
            col("Ready", S, 0),
            col("Up-to-date", I, 0),
            col("Available", I, 0),
            col("Age", S, 0),
            WORKLOAD[0],
            WORKLOAD[1],
            WORKLOAD[2],
        ];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let (spec, status) = (&object["spec"], &object["status"]);
        let mut cells = vec![
            name(object),
            ready_of_desired(object),
            int(&status["updatedReplicas"]),
            int(&status["availableReplicas"]),
            age(object, now),
        ];
        cells.extend(workload(object, &spec["selector"]["matchLabels"]));
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
        default(spec, "progressDeadlineSeconds", json!(600));
        if let Some(strategy) = child(spec, "strategy") {
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                if let Some(rolling) = child(strategy, "rollingUpdate") {
                    default(rolling, "maxSurge", json!("25%"));
                    default(rolling, "maxUnavailable", json!("25%"));
                }
            }
        }
        template(spec);
    }

    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::deployment(object)
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
            &Deployment,
            workload(json!({"matchLabels": {"app": "a"}})),
            json!({"spec": {"replicas": 3}}),
        ));
    }

    #[test]
    fn defaults_as_upstream() {
        let mut deploy = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}});
        Deployment.defaults(&mut deploy);
        let spec = &deploy["spec"];
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(
            (
                spec["replicas"].as_i64(),
                spec["revisionHistoryLimit"].as_i64(),
                spec["progressDeadlineSeconds"].as_i64()
            ),
            (Some(1), Some(10), Some(600))
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        let template = spec["template"]["spec"].as_object().unwrap();
        assert!(
            !template.contains_key("serviceAccountName")
                && !template.contains_key("initContainers"),
            "{template:?}"
        );
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        Deployment.defaults(&mut recreate);
        assert!(recreate["spec"]["strategy"]["rollingUpdate"].is_null());
        let mut wrong = json!({"spec": {"template": 5, "strategy": "x"}});
        Deployment.defaults(&mut wrong);
        assert_eq!(
            (&wrong["spec"]["template"], &wrong["spec"]["strategy"]),
            (&json!(5), &json!("x"))
        );
    }
}
