//! Defaulting primitives, as upstream's defaulters and default admission
//! plugins use them, so that objects read back look like a real cluster's.
//! Each kind's defaults are its strategy's (`crate::strategy`). None of
//! these panics on a wrong-typed field: a field that should be an object
//! and is not is left alone, for validation to refuse.

use serde_json::{json, Map, Value};

/// Sets `object[key]` to `value` when it is absent or null.
pub fn default(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        let slot = map.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// `object[key]`, created as an empty object when absent or null; `None`
/// when it is something else (or `object` is no object).
pub fn child<'a>(object: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    default(object, key, Value::Object(Map::new()));
    object.get_mut(key).filter(|child| child.is_object())
}

/// Calls `f` with each element of the list `object[key]`, if there is one
/// (never creating the key: a null where the client wrote nothing would
/// show up in kubectl's three-way diffs).
pub fn each(object: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = object.get_mut(key).and_then(Value::as_array_mut) {
        items.iter_mut().for_each(&mut f);
    }
}

fn image_pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    let tagged = name.contains(':') && !name.ends_with(":latest");
    if tagged || image.contains('@') {
        "IfNotPresent"
    } else {
        "Always"
    }
}

fn container(container: &mut Value) {
    let image = container["image"].as_str().unwrap_or_default().to_owned();
    default(
        container,
        "imagePullPolicy",
        json!(image_pull_policy(&image)),
    );
    default(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    default(container, "terminationMessagePolicy", json!("File"));
    default(container, "resources", json!({}));
    each(container, "ports", |port| {
        default(port, "protocol", json!("TCP"))
    });
}

/// A pod spec's defaults (also inside workload templates).
pub fn pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    each(spec, "containers", container);
    each(spec, "initContainers", container);
}

/// The defaults of a workload's `spec.template.spec`.
pub fn template(spec: &mut Value) {
    if let Some(spec) = child(spec, "template").and_then(|t| child(t, "spec")) {
        pod_spec(spec);
    }
}

/// The defaults of a `spec.ports[*].protocol` list.
pub fn protocols(object: &mut Value, key: &str) {
    each(object, key, |port| default(port, "protocol", json!("TCP")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_typed_fields_are_left_for_validation() {
        let mut spec = json!({"template": 5});
        template(&mut spec);
        assert_eq!(spec, json!({"template": 5}));
        let mut object = json!({"spec": "x"});
        assert!(child(&mut object, "spec").is_none());
        let mut list = json!({"containers": ["x", 5, {"image": "a:1"}]});
        pod_spec(&mut list);
        assert_eq!(list["containers"][0], "x");
        assert_eq!(list["containers"][2]["imagePullPolicy"], "IfNotPresent");
        let mut not_object = json!("x");
        default(&mut not_object, "k", json!(1));
        template(&mut not_object);
        assert_eq!(not_object, "x");
    }

    #[test]
    fn absent_children_are_created_and_defaulted() {
        let mut spec = json!({});
        template(&mut spec);
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(image_pull_policy("nginx"), "Always");
        assert_eq!(image_pull_policy("registry.local:5000/app"), "Always");
        assert_eq!(image_pull_policy("app@sha256:00"), "IfNotPresent");
    }
}
