//! The fields an update may not change, as upstream's validation refuses
//! them (422 with the field at fault).

use serde_json::Value;

/// A field an update changed but may not: (field path, message).
pub type Violation = (String, String);

const POD_UPDATE_MESSAGE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// What `new` changes of `old` that `kind` does not allow.
pub fn violations(kind: &str, old: &Value, new: &Value) -> Vec<Violation> {
    let mut found = Vec::new();
    match kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet"
            if old["spec"]["selector"] != new["spec"]["selector"] =>
        {
            let message = format!(
                "Invalid value: {}: field is immutable",
                new["spec"]["selector"]
            );
            found.push(("spec.selector".into(), message));
        }
        "Pod" => {
            let mutable_removed = |spec: &Value| {
                let mut spec = spec.clone();
                for list in ["containers", "initContainers"] {
                    if let Some(containers) = spec[list].as_array_mut() {
                        for container in containers {
                            container["image"] = Value::Null;
                        }
                    }
                }
                for field in [
                    "activeDeadlineSeconds",
                    "tolerations",
                    "terminationGracePeriodSeconds",
                    "schedulingGates",
                    "nodeName",
                ] {
                    if let Some(map) = spec.as_object_mut() {
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
        }
        _ => {}
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
        assert_eq!(violations("Deployment", &old, &new)[0].0, "spec.selector");
        assert!(violations("Deployment", &old, &old).is_empty());

        let pod = json!({"spec": {"containers": [{"name": "c", "image": "a:1"}], "restartPolicy": "Always"}});
        let new_image = json!({"spec": {"containers": [{"name": "c", "image": "a:2"}], "restartPolicy": "Always"}});
        assert!(
            violations("Pod", &pod, &new_image).is_empty(),
            "the image may change"
        );
        let new_policy = json!({"spec": {"containers": [{"name": "c", "image": "a:1"}], "restartPolicy": "Never"}});
        assert_eq!(violations("Pod", &pod, &new_policy)[0].0, "spec");
    }
}
