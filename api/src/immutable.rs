//! The fields an update may not change, as upstream's validation refuses
//! them (422 with the field at fault).

use serde_json::Value;

/// A field an update changed but may not: (field path, message).
pub type Violation = (String, String);

const POD_UPDATE_MESSAGE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A workload's `spec.selector`, which no update may change.
pub fn selector(old: &Value, new: &Value) -> Vec<Violation> {
    if old["spec"]["selector"] == new["spec"]["selector"] {
        return Vec::new();
    }
    let message = format!(
        "Invalid value: {}: field is immutable",
        new["spec"]["selector"]
    );
    vec![("spec.selector".into(), message)]
}

/// A Pod's spec: only images, the active deadline, added tolerations, the
/// grace period and scheduling gates may change, and a bound pod's node
/// never.
pub fn pod(old: &Value, new: &Value) -> Vec<Violation> {
    let mut found = Vec::new();
    let mutable_removed = |spec: &Value| {
        let mut spec = spec.clone();
        for list in ["containers", "initContainers"] {
            let containers = spec.get_mut(list).and_then(Value::as_array_mut);
            for container in containers.into_iter().flatten() {
                if let Some(container) = container.as_object_mut() {
                    container.remove("image");
                }
            }
        }
        if let Some(map) = spec.as_object_mut() {
            for field in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
                "schedulingGates",
                "nodeName",
            ] {
                map.remove(field);
            }
        }
        spec
    };
    if mutable_removed(&old["spec"]) != mutable_removed(&new["spec"]) {
        found.push(("spec".into(), format!("Forbidden: {POD_UPDATE_MESSAGE}")));
    }
    let old_node = old["spec"]["nodeName"].as_str().unwrap_or_default();
    if !old_node.is_empty() && new["spec"]["nodeName"].as_str() != Some(old_node) {
        found.push((
            "spec.nodeName".into(),
            "Forbidden: the pod is already bound to a node".into(),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_and_pod_specs_are_immutable() {
        let old = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}}});
        let new = json!({"spec": {"selector": {"matchLabels": {"app": "b"}}}});
        assert_eq!(selector(&old, &new)[0].0, "spec.selector");
        assert!(selector(&old, &old).is_empty());

        let old = json!({"spec": {"containers": [{"name": "c", "image": "a:1"}], "restartPolicy": "Always"}});
        let new_image = json!({"spec": {"containers": [{"name": "c", "image": "a:2"}], "restartPolicy": "Always"}});
        assert!(pod(&old, &new_image).is_empty(), "the image may change");
        let new_policy = json!({"spec": {"containers": [{"name": "c", "image": "a:1"}], "restartPolicy": "Never"}});
        assert_eq!(pod(&old, &new_policy)[0].0, "spec");
    }
}
