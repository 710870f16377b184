//! Nodes: kubelets register them with their status, which then changes
//! through `/status` alone.

use serde_json::Value;

use super::{keep_status, Strategy};

/// The Node strategy.
#[derive(Debug, Clone, Copy)]
pub struct Node;

impl Strategy for Node {
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
