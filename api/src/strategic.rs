//! Strategic merge patch, as `kubectl apply` sends it: maps merge, lists
//! with a merge key merge element by element, and the directives `$patch`
//! (replace, delete, merge), `$retainKeys`, `$deleteFromPrimitiveList/` and
//! `$setElementOrder/` are honoured. Which lists merge, and by which key,
//! comes from the Kubernetes types' patch strategies (their Go struct tags,
//! which the published schemas do not carry).

use serde_json::{Map, Value};

use crate::openapi::OpenApi;

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Elements are objects merged by this key.
    Key(&'static str),
    /// Elements are primitives; the patch's are added (a set union).
    Primitives,
}

/// The lists of the served types that merge, by (schema, field).
const MERGING_LISTS: &[(&str, &str, Strategy)] = {
    use Strategy::{Key, Primitives};
    &[
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers",
            Primitives,
        ),
        (
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "ownerReferences",
            Key("uid"),
        ),
        ("io.k8s.api.core.v1.PodSpec", "containers", Key("name")),
        ("io.k8s.api.core.v1.PodSpec", "initContainers", Key("name")),
        (
            "io.k8s.api.core.v1.PodSpec",
            "ephemeralContainers",
            Key("name"),
        ),
        ("io.k8s.api.core.v1.PodSpec", "volumes", Key("name")),
        (
            "io.k8s.api.core.v1.PodSpec",
            "imagePullSecrets",
            Key("name"),
        ),
        ("io.k8s.api.core.v1.PodSpec", "hostAliases", Key("ip")),
        ("io.k8s.api.core.v1.PodSpec", "resourceClaims", Key("name")),
        ("io.k8s.api.core.v1.PodSpec", "schedulingGates", Key("name")),
        (
            "io.k8s.api.core.v1.PodSpec",
            "topologySpreadConstraints",
            Key("topologyKey"),
        ),
        (
            "io.k8s.api.core.v1.Container",
            "ports",
            Key("containerPort"),
        ),
        ("io.k8s.api.core.v1.Container", "env", Key("name")),
        (
            "io.k8s.api.core.v1.Container",
            "volumeMounts",
            Key("mountPath"),
        ),
        (
            "io.k8s.api.core.v1.Container",
            "volumeDevices",
            Key("devicePath"),
        ),
        (
            "io.k8s.api.core.v1.EphemeralContainer",
            "ports",
            Key("containerPort"),
        ),
        ("io.k8s.api.core.v1.EphemeralContainer", "env", Key("name")),
        (
            "io.k8s.api.core.v1.EphemeralContainer",
            "volumeMounts",
            Key("mountPath"),
        ),
        (
            "io.k8s.api.core.v1.EphemeralContainer",
            "volumeDevices",
            Key("devicePath"),
        ),
        ("io.k8s.api.core.v1.ServiceSpec", "ports", Key("port")),
        ("io.k8s.api.core.v1.PodStatus", "conditions", Key("type")),
        ("io.k8s.api.core.v1.NodeStatus", "conditions", Key("type")),
        ("io.k8s.api.core.v1.NodeStatus", "addresses", Key("type")),
        (
            "io.k8s.api.core.v1.NamespaceStatus",
            "conditions",
            Key("type"),
        ),
        (
            "io.k8s.api.core.v1.ReplicationControllerStatus",
            "conditions",
            Key("type"),
        ),
        (
            "io.k8s.api.apps.v1.DeploymentStatus",
            "conditions",
            Key("type"),
        ),
        (
            "io.k8s.api.apps.v1.ReplicaSetStatus",
            "conditions",
            Key("type"),
        ),
        (
            "io.k8s.api.apps.v1.DaemonSetStatus",
            "conditions",
            Key("type"),
        ),
        (
            "io.k8s.api.apps.v1.StatefulSetStatus",
            "conditions",
            Key("type"),
        ),
    ]
};

/// The (schema, field, merge key) of every list that merges, for the
/// OpenAPI documents' `x-kubernetes-patch-*` extensions (kubectl computes
/// its three-way patches from them); the key is `None` for primitive lists.
pub(crate) fn merging_lists(
) -> impl Iterator<Item = (&'static str, &'static str, Option<&'static str>)> {
    MERGING_LISTS.iter().map(|(schema, field, strategy)| {
        let key = match strategy {
            Strategy::Key(key) => Some(*key),
            Strategy::Primitives => None,
        };
        (*schema, *field, key)
    })
}

/// Fields whose patches carry `$retainKeys` (union types).
pub(crate) const RETAIN_KEYS: &[(&str, &str)] = &[
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy"),
    ("io.k8s.api.apps.v1.DaemonSetSpec", "updateStrategy"),
];

const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

fn strategy(schema: Option<&str>, field: &str) -> Option<Strategy> {
    let schema = schema?;
    MERGING_LISTS
        .iter()
        .find(|(s, f, _)| *s == schema && *f == field)
        .map(|(_, _, strategy)| *strategy)
}

/// Applies `patch` to `original`, whose schema is `schema_name`.
pub fn apply(
    openapi: &OpenApi,
    schema_name: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, String> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err("a strategic merge patch must be a JSON object".into());
    };
    merge_map(openapi, Some(schema_name), original, patch).map(Value::Object)
}

fn merge_map(
    openapi: &OpenApi,
    schema: Option<&str>,
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => return Ok(without_directives(patch)),
        Some("delete") => return Ok(Map::new()),
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch directive $patch: {other}")),
    }
    let mut result = original.clone();
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        let field_schema = schema.and_then(|s| openapi.field_schema(s, key));
        match (value, result.get(key)) {
            (Value::Null, _) => {
                result.remove(key);
            }
            (Value::Object(p), Some(Value::Object(o))) => {
                let merged = merge_map(openapi, field_schema.as_deref(), o, p)?;
                result.insert(key.clone(), Value::Object(merged));
            }
            (Value::Object(p), _) => {
                result.insert(
                    key.clone(),
                    Value::Object(merge_map(openapi, field_schema.as_deref(), &Map::new(), p)?),
                );
            }
            (Value::Array(p), current) => {
                let current = current
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let item_schema = schema.and_then(|s| openapi.item_schema(s, key));
                let merged = match strategy(schema, key) {
                    Some(Strategy::Key(merge_key)) => {
                        merge_by_key(openapi, item_schema.as_deref(), &current, p, merge_key)?
                    }
                    Some(Strategy::Primitives) => merge_primitives(&current, p),
                    None => p.iter().filter(|v| !is_directive(v)).cloned().collect(),
                };
                result.insert(key.clone(), Value::Array(merged));
            }
            (value, _) => {
                result.insert(key.clone(), value.clone());
            }
        }
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_PRIMITIVES) {
            let remove = value.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = result.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
        }
    }
    for (key, order) in patch {
        if let (Some(field), Some(order)) = (key.strip_prefix(SET_ORDER), order.as_array()) {
            let merge_key = match strategy(schema, field) {
                Some(Strategy::Key(k)) => Some(k),
                _ => None,
            };
            if let Some(Value::Array(list)) = result.get_mut(field) {
                reorder(list, order, merge_key);
            }
        }
    }
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        result.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(result)
}

fn is_directive(value: &Value) -> bool {
    value.get("$patch").is_some() && value.as_object().is_some_and(|o| o.len() == 1)
}

fn without_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn merge_by_key(
    openapi: &OpenApi,
    item_schema: Option<&str>,
    original: &[Value],
    patch: &[Value],
    key: &str,
) -> Result<Vec<Value>, String> {
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace") && is_directive(p))
    {
        return Ok(patch.iter().filter(|v| !is_directive(v)).cloned().collect());
    }
    let mut result = original.to_vec();
    for item in patch {
        let Value::Object(fields) = item else {
            return Err(format!("list elements merged by {key} must be objects"));
        };
        let id = fields
            .get(key)
            .ok_or_else(|| format!("a list element lacks its merge key {key:?}"))?;
        let at = result.iter().position(|o| o.get(key) == Some(id));
        match (fields.get("$patch").and_then(Value::as_str), at) {
            (Some("delete"), Some(i)) => {
                result.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => {
                let current = result[i].as_object().cloned().unwrap_or_default();
                result[i] = Value::Object(merge_map(openapi, item_schema, &current, fields)?);
            }
            (_, None) => result.push(Value::Object(merge_map(
                openapi,
                item_schema,
                &Map::new(),
                fields,
            )?)),
        }
    }
    Ok(result)
}

fn merge_primitives(original: &[Value], patch: &[Value]) -> Vec<Value> {
    let mut result = original.to_vec();
    for value in patch {
        if !result.contains(value) {
            result.push(value.clone());
        }
    }
    result
}

/// Puts the elements named in `order` first, in that order; the others
/// keep their relative order after them.
fn reorder(list: &mut [Value], order: &[Value], key: Option<&str>) {
    let id = |v: &Value| match key {
        Some(k) => v.get(k).cloned(),
        None => Some(v.clone()),
    };
    let rank = |v: &Value| {
        let this = id(v);
        order.iter().position(|o| match key {
            Some(k) => o.get(k).cloned() == this,
            None => Some(o.clone()) == this,
        })
    };
    list.sort_by_key(|v| rank(v).unwrap_or(usize::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use serde_json::json;

    fn patched(original: Value, patch: Value) -> Value {
        let openapi = OpenApi::build(&Registry::builtin());
        apply(&openapi, "io.k8s.api.apps.v1.Deployment", &original, &patch).unwrap()
    }

    fn deployment(containers: Value) -> Value {
        json!({"metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
               "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn containers_merge_by_name_and_ports_by_container_port() {
        let original = deployment(json!([
            {"name": "app", "image": "nginx:1", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
            {"name": "sidecar", "image": "busybox"}
        ]));
        let patch = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "app", "image": "nginx:2", "ports": [{"containerPort": 8080, "name": "alt"}]}
        ]}}}});
        let result = patched(original, patch);
        assert_eq!(result["spec"]["replicas"], 3);
        let containers = &result["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "nginx:2");
        assert_eq!(containers[0]["ports"].as_array().unwrap().len(), 3);
        assert_eq!(
            containers[1]["name"], "sidecar",
            "elements not in the patch stay"
        );
        assert_eq!(result["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn directives_delete_replace_retain_and_order() {
        let original = deployment(
            json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}, {"name": "c", "image": "z"}]),
        );
        let patch = json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["b"], "labels": {"app": null}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                "containers": [{"name": "b", "$patch": "delete"}]
            }}}
        });
        let result = patched(original, patch);
        assert_eq!(result["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(result["metadata"]["labels"], json!({}));
        let names: Vec<&str> = result["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["c", "a"]);

        let replace = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "i"}]}}}});
        let result = patched(deployment(json!([{"name": "a", "image": "x"}])), replace);
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "i"}])
        );

        let original = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let retain = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(
            patched(original, retain)["spec"]["strategy"],
            json!({"type": "Recreate"})
        );
    }

    #[test]
    fn lists_without_a_strategy_are_replaced() {
        let original = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "args": ["1", "2"]}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "args": ["3"]}]}}}});
        let result = patched(original, patch);
        assert_eq!(
            result["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "b"}])
        );
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["3"])
        );
    }
}
