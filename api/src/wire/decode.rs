//! A body checked against its kind's Go type as kube-apiserver decodes it:
//! with `sigs.k8s.io/json` (a fork of `encoding/json`) into the versioned
//! struct, the handler wrapping a failure as
//! `Pod in version "v1" cannot be handled as a Pod: ...` (apiserver's
//! endpoints/handlers `transformDecodeError`).
//!
//! As `encoding/json` does (decode.go): a value of the wrong JSON type is an
//! `UnmarshalTypeError` naming the innermost struct and the path of JSON
//! field names from the root (no list indices, no map keys), saved while
//! decoding goes on, so the first one is reported; bad base64 is saved
//! without a path; an error from a type's own `UnmarshalJSON` (Quantity,
//! IntOrString, Time) ends decoding at once and wins. Object keys are
//! visited in sorted order (the body is held as a sorted map), where Go
//! visits them in the document's: with two wrong fields, the one reported
//! may differ.

use serde_json::Value;

use super::{go, Leaf, Node, Types};

impl Types {
    /// Checks `object`, a body for `kind` in `api_version` (already known
    /// to be a JSON object), as kube-apiserver's decoder would: the 400
    /// message of the first failure, as upstream words it.
    pub fn check(&self, api_version: &str, kind: &str, object: &Value) -> Result<(), String> {
        let Some(root) = self.kind(api_version, kind) else {
            return Ok(());
        };
        // The serializer first reads apiVersion and kind alone
        // (runtime/serializer/json/meta.go SimpleMetaFactory.Interpret),
        // into an unnamed struct: then the handler knows no kind.
        for field in ["apiVersion", "kind"] {
            if let Some(value) = object.get(field).filter(|v| !v.is_null() && !v.is_string()) {
                // apiserver's summarizeData(body, 30).
                let body = object.to_string();
                let summary = match body.char_indices().nth(30) {
                    Some((end, _)) => format!("{} ...", &body[..end]),
                    None => body,
                };
                return Err(format!(
                    "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: json: cannot unmarshal {} into Go struct field .{field} of type string ({summary})",
                    described(value)
                ));
            }
        }
        let mut walk = Walk {
            types: self,
            stack: Vec::new(),
            within: None,
            saved: None,
        };
        let failure = match walk.value(root, object) {
            Err(hard) => Some(hard),
            Ok(()) => walk.saved,
        };
        match failure {
            None => Ok(()),
            Some(error) => {
                let sent = object.get("kind").and_then(Value::as_str).unwrap_or(kind);
                let version = object
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or(api_version);
                let version = version.rsplit('/').next().unwrap_or(version);
                Err(format!(
                    "{sent} in version {version:?} cannot be handled as a {kind}: {error}"
                ))
            }
        }
    }
}

/// How encoding/json names a JSON value in an `UnmarshalTypeError`.
fn described(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

struct Walk<'a> {
    types: &'a Types,
    /// The JSON field names from the root (`errorContext.FieldStack`).
    stack: Vec<&'a str>,
    /// The struct holding the current field (`errorContext.Struct`).
    within: Option<&'a str>,
    /// The first saved error.
    saved: Option<String>,
}

impl<'a> Walk<'a> {
    /// An `UnmarshalTypeError` with the current context.
    fn type_error(&self, value: &str, go_type: &str) -> String {
        match self.within {
            Some(within) => format!(
                "json: cannot unmarshal {value} into Go struct field {within}.{} of type {go_type}",
                self.stack.join(".")
            ),
            None => format!("json: cannot unmarshal {value} into Go value of type {go_type}"),
        }
    }

    fn save(&mut self, error: String) {
        self.saved.get_or_insert(error);
    }

    fn mismatch(&mut self, node: usize, value: &Value) {
        let error = self.type_error(described(value), &self.types.go_type(node));
        self.save(error);
    }

    /// Decodes `value` into `node`: `Err` for an error that ends decoding.
    fn value(&mut self, node: usize, value: &'a Value) -> Result<(), String> {
        if value.is_null() {
            // null leaves any Go value as it is.
            return Ok(());
        }
        let types = self.types;
        match (&types.nodes[node], value) {
            (Node::Struct(s), Value::Object(map)) => {
                for (key, field_value) in map {
                    let Some(field) = s.fields.get(key) else {
                        continue;
                    };
                    let within = self.within.replace(&s.name);
                    self.stack.push(key);
                    self.value(field.node, field_value)?;
                    self.stack.pop();
                    self.within = within;
                }
            }
            (Node::Slice(item), Value::Array(items)) => {
                for item_value in items {
                    self.value(*item, item_value)?;
                }
            }
            (Node::Map(item), Value::Object(map)) => {
                for item_value in map.values() {
                    self.value(*item, item_value)?;
                }
            }
            (Node::Leaf(leaf), value) => self.leaf(*leaf, node, value)?,
            (_, value) => self.mismatch(node, value),
        }
        Ok(())
    }

    fn leaf(&mut self, leaf: Leaf, node: usize, value: &Value) -> Result<(), String> {
        match (leaf, value) {
            (Leaf::Any, _)
            | (Leaf::String, Value::String(_))
            | (Leaf::Bool, Value::Bool(_))
            | (Leaf::Float64, Value::Number(_)) => {}
            (Leaf::Int32 | Leaf::Int64, Value::Number(n)) => {
                if !fits(leaf, n) {
                    let error = self.type_error(&format!("number {n}"), &self.types.go_type(node));
                    self.save(error);
                }
            }
            (Leaf::Bytes, Value::String(text)) => {
                if let Some(error) = go::base64_error(text) {
                    self.save(error);
                }
            }
            // A []byte also decodes from a list of bytes.
            (Leaf::Bytes, Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::Null => {}
                        Value::Number(n) if n.as_u64().is_some_and(|b| b <= 255) => {}
                        Value::Number(n) => {
                            let error = self.type_error(&format!("number {n}"), "uint8");
                            self.save(error);
                        }
                        other => {
                            let error = self.type_error(described(other), "uint8");
                            self.save(error);
                        }
                    }
                }
            }
            // metav1.Time/MicroTime.UnmarshalJSON: json.Unmarshal into a
            // string, then time.Parse.
            (Leaf::Time | Leaf::MicroTime, Value::String(text)) => {
                if let Some(error) = go::time_error(text, leaf == Leaf::MicroTime) {
                    return Err(error);
                }
            }
            (Leaf::Time | Leaf::MicroTime, other) => {
                return Err(self.type_error(described(other), "string"));
            }
            // intstr.IntOrString.UnmarshalJSON: a string, or json.Unmarshal
            // into an int32.
            (Leaf::IntOrString, Value::String(_)) => {}
            (Leaf::IntOrString, Value::Number(n)) => {
                if !fits(Leaf::Int32, n) {
                    return Err(self.type_error(&format!("number {n}"), "int32"));
                }
            }
            (Leaf::IntOrString, other) => return Err(self.type_error(described(other), "int32")),
            // resource.Quantity.UnmarshalJSON: ParseQuantity of the text
            // (between the quotes of a string), its error as it is.
            (Leaf::Quantity, value) => {
                let text = match value {
                    Value::String(text) => text.trim().to_owned(),
                    other => other.to_string(),
                };
                if let Some(error) = go::quantity_error(&text) {
                    return Err(error.to_owned());
                }
            }
            (_, value) => self.mismatch(node, value),
        }
        Ok(())
    }
}

/// Whether a JSON number is an integer literal of the Go int type
/// (`strconv.ParseInt` and `OverflowInt`).
fn fits(leaf: Leaf, n: &serde_json::Number) -> bool {
    match (n.as_i64(), leaf) {
        (Some(i), Leaf::Int32) => i32::try_from(i).is_ok(),
        (Some(_), _) => true,
        (None, _) => false,
    }
}

impl Types {
    /// The Go type of a node as `reflect.Type.String()` prints it.
    pub(super) fn go_type(&self, node: usize) -> String {
        match &self.nodes[node] {
            Node::Struct(s) => s.go.clone(),
            Node::Slice(item) => format!("[]{}", self.go_type(*item)),
            Node::Map(item) => format!("map[string]{}", self.go_type(*item)),
            Node::Leaf(leaf) => match leaf {
                Leaf::String => "string",
                Leaf::Bytes => "[]uint8",
                Leaf::Int32 => "int32",
                Leaf::Int64 => "int64",
                Leaf::Float64 => "float64",
                Leaf::Bool => "bool",
                Leaf::Time => "v1.Time",
                Leaf::MicroTime => "v1.MicroTime",
                Leaf::Quantity => "resource.Quantity",
                Leaf::IntOrString => "intstr.IntOrString",
                Leaf::Any => "interface {}",
            }
            .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::wire::tests::TYPES;

    fn check(object: serde_json::Value) -> Result<(), String> {
        let api_version = object["apiVersion"].as_str().unwrap().to_owned();
        let kind = object["kind"].as_str().unwrap().to_owned();
        TYPES.check(&api_version, &kind, &object)
    }

    fn pod(spec: serde_json::Value) -> serde_json::Value {
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "x" }, "spec": spec })
    }

    #[test]
    fn a_valid_object_passes() {
        let spec = json!({
            "containers": [{ "name": "c", "image": "i", "ports": [{ "containerPort": 80 }],
                "resources": { "limits": { "cpu": "100m", "memory": 1024 } } }],
            "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution":
                { "nodeSelectorTerms": [] } } },
        });
        assert_eq!(check(pod(spec)), Ok(()));
    }

    #[test]
    fn wrong_types_are_named_as_encoding_json_names_them() {
        assert_eq!(
            check(pod(json!("x"))).unwrap_err(),
            r#"Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec"#
        );
        let affinity = json!({ "affinity": { "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [] } } });
        assert_eq!(
            check(pod(affinity)).unwrap_err(),
            r#"Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal array into Go struct field NodeAffinity.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution of type v1.NodeSelector"#
        );
        let port = json!({ "containers": [{ "name": "c", "ports": [{ "containerPort": "80" }] }] });
        assert!(check(pod(port)).unwrap_err().ends_with(
            "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"
        ));
        let labels = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "labels": { "a": 1 } } });
        assert!(check(labels).unwrap_err().ends_with(
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"
        ));
        let replicas =
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "spec": { "replicas": 1.5 } });
        assert!(check(replicas).unwrap_err().ends_with(
            "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"
        ));
        let template =
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "spec": { "template": 5 } });
        assert!(check(template).unwrap_err().ends_with(
            "json: cannot unmarshal number into Go struct field DeploymentSpec.spec.template of type v1.PodTemplateSpec"
        ));
        let kind = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": 5 } });
        assert!(check(kind)
            .unwrap_err()
            .ends_with("Go struct field ObjectMeta.metadata.name of type string"));
    }

    #[test]
    fn own_decoders_answer_with_their_own_errors() {
        let secret =
            json!({ "apiVersion": "v1", "kind": "Secret", "data": { "k": "not base64!" } });
        assert_eq!(
            check(secret).unwrap_err(),
            r#"Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3"#
        );
        let cpu = json!({ "containers": [{ "name": "c", "resources": { "requests": { "cpu": "lots" } } }] });
        assert!(check(pod(cpu)).unwrap_err().ends_with(
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        ));
        let target = json!({ "apiVersion": "v1", "kind": "Service", "spec": { "ports": [{ "port": 80, "targetPort": {} }] } });
        assert!(check(target).unwrap_err().ends_with(
            "json: cannot unmarshal object into Go struct field ServicePort.spec.ports.targetPort of type int32"
        ));
        let time = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "creationTimestamp": "soon" } });
        assert!(check(time).unwrap_err().ends_with(
            r#"parsing time "soon" as "2006-01-02T15:04:05Z07:00": cannot parse "soon" as "2006""#
        ));
        let time =
            json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "creationTimestamp": 5 } });
        assert!(check(time).unwrap_err().ends_with(
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.creationTimestamp of type string"
        ));
    }

    #[test]
    fn an_error_of_an_own_decoder_wins_over_a_saved_one() {
        // spec.containers (saved) sorts before spec.overhead (hard).
        let spec = json!({ "containers": "x", "overhead": { "cpu": "lots" } });
        assert!(check(pod(spec))
            .unwrap_err()
            .contains("quantities must match"));
    }

    #[test]
    fn a_kind_that_is_not_a_string_is_refused_before_the_type_is_known() {
        let object = json!({ "apiVersion": "v1", "kind": 5 });
        let error = TYPES.check("v1", "Pod", &object).unwrap_err();
        assert!(error.starts_with("the object provided is unrecognized (must be of type Pod): couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field .kind of type string"), "{error}");
    }
}
