//! Nodes: kubelets register them with their status, which then changes
//! through `/status` alone.

use serde_json::{json, Value};

use super::{keep_status, Strategy};
use crate::table::{age, col, flag, name, or_none, text, Column, S};

/// The Node strategy.
#[derive(Debug, Clone, Copy)]
pub struct Node;

/// STATUS: the Ready condition, and whether it takes pods.
fn status(node: &Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| {
            if c["status"] == "True" {
                "Ready"
            } else {
                "NotReady"
            }
        })
        .unwrap_or("Unknown");
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        format!("{ready},SchedulingDisabled")
    } else {
        ready.to_owned()
    }
}

/// The node's first address of type `kind`.
fn address(node: &Value, kind: &str) -> String {
    let address = node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == kind))
        .map(|x| text(&x["address"]))
        .unwrap_or_default();
    or_none(address)
}

impl Strategy for Node {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Name", S, 0),
            col("Status", S, 0),
            col("Roles", S, 0),
            col("Age", S, 0),
            col("Version", S, 0),
            col("Internal-IP", S, 1),
            col("External-IP", S, 1),
            col("OS-Image", S, 1),
            col("Kernel-Version", S, 1),
            col("Container-Runtime", S, 1),
        ];
        COLUMNS
    }

    fn cells(&self, node: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let info = &node["status"]["nodeInfo"];
        vec![
            name(node),
            json!(status(node)),
            json!("<none>"),
            age(node, now),
            json!(text(&info["kubeletVersion"])),
            json!(address(node, "InternalIP")),
            json!(address(node, "ExternalIP")),
            json!(or_none(text(&info["osImage"]))),
            json!(or_none(text(&info["kernelVersion"]))),
            json!(or_none(text(&info["containerRuntimeVersion"]))),
        ]
    }

    fn fields(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }

    fn field(&self, node: &Value, field: &str) -> Option<String> {
        (field == "spec.unschedulable").then(|| flag(&node["spec"]["unschedulable"]))
    }

    fn prepare_for_update(&self, old: &Value, new: &mut Value) {
        keep_status(old, new);
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
            strategy: &Node,
            object: json!({"metadata": {"name": "n1"}, "spec": {}, "status": {"capacity": {"cpu": "8"}}}),
            resets_status: false,
            status_subresource: true,
            spec_update: json!({"spec": {"unschedulable": true}}),
            immutable: vec![],
        });
    }
}
