//! The indexes components file objects under, as client-go's indexers
//! (`cache.NamespaceIndex`, the scheduler's node-name index, the
//! controllers' owner-uid index, ...). Each is a plain function of the
//! object; [`Informer::add_index`](super::Informer::add_index) keeps it.

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Resource;

/// The name of the index by namespace.
pub const NAMESPACE: &str = "namespace";
/// The name of the index by controller owner uid.
pub const CONTROLLER: &str = "controller-uid";
/// The name of the index of objects with no controlling owner, by
/// namespace (the orphans a controller may adopt).
pub const ORPHANS: &str = "orphans-by-namespace";
/// The name of the index of pods by `spec.nodeName`.
pub const NODE_NAME: &str = "spec.nodeName";
/// The name of the index by label pair (see [`pair`]).
pub const LABELS: &str = "label-pairs";
/// The name of the index of Services by selector pair (see [`pair`]).
pub const SELECTOR: &str = "selector-pairs";

/// An object's namespace.
pub fn namespace<K: Resource>(object: &K) -> Vec<String> {
    object.meta().namespace.iter().cloned().collect()
}

/// The uid of an object's controlling owner (the owner reference with
/// `controller: true`), if it has one.
pub fn controller_uid<K: Resource>(object: &K) -> Vec<String> {
    let owners = object.meta().owner_references.iter().flatten();
    owners
        .filter(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
        .take(1)
        .collect()
}

/// The namespace of an object that has no controlling owner.
pub fn orphan_namespace<K: Resource>(object: &K) -> Vec<String> {
    match controller_uid(object).is_empty() {
        true => namespace(object),
        false => Vec::new(),
    }
}

/// The node a pod is bound to, if it is.
pub fn pod_node_name(pod: &Pod) -> Vec<String> {
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    node.filter(|n| !n.is_empty())
        .map(str::to_owned)
        .into_iter()
        .collect()
}

/// The value a label pair of an object of `namespace` is filed under.
pub fn pair(namespace: &str, key: &str, value: &str) -> String {
    format!("{namespace}\u{0}{key}={value}")
}

/// Each of an object's labels, within its namespace.
pub fn label_pairs<K: Resource>(object: &K) -> Vec<String> {
    let meta = object.meta();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let labels = meta.labels.iter().flatten();
    labels.map(|(k, v)| pair(namespace, k, v)).collect()
}

/// Each pair of a Service's selector, within its namespace.
pub fn service_selector_pairs(service: &Service) -> Vec<String> {
    let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
    let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref());
    selector
        .into_iter()
        .flatten()
        .map(|(k, v)| pair(namespace, k, v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_objects_are_filed_under() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u1"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                     "uid": "u2", "controller": true}]},
            "spec": {"containers": [], "nodeName": "n1"},
        }))
        .unwrap();
        assert_eq!(namespace(&pod), ["ns"]);
        assert_eq!(controller_uid(&pod), ["u2"]);
        assert!(orphan_namespace(&pod).is_empty());
        assert_eq!(pod_node_name(&pod), ["n1"]);
        assert_eq!(label_pairs(&pod), [pair("ns", "app", "web")]);
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"selector": {"app": "web"}},
        }))
        .unwrap();
        assert_eq!(service_selector_pairs(&service), [pair("ns", "app", "web")]);
        assert!(pod_node_name(&Pod::default()).is_empty());
        assert!(controller_uid(&Pod::default()).is_empty());
        let mut orphan = Pod::default();
        orphan.metadata.namespace = Some("ns".into());
        assert_eq!(orphan_namespace(&orphan), ["ns"]);
    }
}
