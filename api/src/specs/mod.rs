//! Validation of what objects ask for beyond their metadata, as upstream's
//! `pkg/apis/core/validation` and `pkg/apis/apps/validation` validate the
//! kinds served: pod specs and templates ([`pod`]), workloads
//! ([`deployment`], [`replica_set`], ...), Services ([`service`]),
//! ConfigMaps, Secrets and Namespaces ([`config_map`], ...). Each problem is
//! a (reason, field path, message) in upstream's words, the message being
//! what upstream's `field.Error.ErrorBody()` prints, bad values printed as
//! Go prints them (`"web"`, `8080`, `map[string]string{"app":"x"}`).
//!
//! The checks read the JSON as it came, so a wrong-typed field is a problem
//! naming it (`spec: Invalid value: "string": must be an object`), never a
//! panic.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::validation::{label_value_errors, qualified_name_errors};

mod config;
mod pod;
pub mod quantity;
mod service;
mod workloads;

pub use config::{config_map, namespace, secret};
pub use pod::pod;
pub use service::service;
pub use workloads::{daemon_set, deployment, replica_set, replication_controller, stateful_set};

/// One problem: upstream's cause reason, the field path, the message.
pub type Problem = (&'static str, String, String);

/// Go's `%q` of a string (`strconv.Quote`).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value as upstream prints a bad value of the Go type it decodes
/// into: strings quoted, numbers and booleans bare, string maps as
/// `map[string]string{"a":"b"}`, string lists as `[]string{"a"}`.
pub(crate) fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => quote(s),
        Value::Null => "null".into(),
        Value::Object(map) if map.values().all(Value::is_string) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            let pairs: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", quote(k), go_value(v)))
                .collect();
            format!("map[string]string{{{}}}", pairs.join(", "))
        }
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let items: Vec<String> = items.iter().map(go_value).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// What upstream names the JSON type of a value in its type errors.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Collects problems while walking an object. Its readers treat an absent
/// or null field as Go's zero value and a wrong-typed one as a problem.
#[derive(Debug, Default)]
pub(crate) struct Check {
    pub problems: Vec<Problem>,
}

impl Check {
    fn push(&mut self, reason: &'static str, field: &str, message: String) {
        self.problems.push((reason, field.to_owned(), message));
    }

    fn with_detail(kind: &str, detail: &str) -> String {
        if detail.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}: {detail}")
        }
    }

    /// `field.Required`.
    pub fn required(&mut self, field: &str, detail: &str) {
        let message = Self::with_detail("Required value", detail);
        self.push("FieldValueRequired", field, message);
    }

    /// `field.Forbidden`.
    pub fn forbidden(&mut self, field: &str, detail: &str) {
        let message = Self::with_detail("Forbidden", detail);
        self.push("FieldValueForbidden", field, message);
    }

    /// `field.Invalid`, with the bad value already printed as Go prints it.
    pub fn invalid(&mut self, field: &str, bad: &str, detail: &str) {
        let message = Self::with_detail(&format!("Invalid value: {bad}"), detail);
        self.push("FieldValueInvalid", field, message);
    }

    /// `field.Duplicate`.
    pub fn duplicate(&mut self, field: &str, bad: &str) {
        self.push(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {bad}"),
        );
    }

    /// `field.NotFound`.
    pub fn not_found(&mut self, field: &str, bad: &str) {
        self.push("FieldValueNotFound", field, format!("Not found: {bad}"));
    }

    /// `field.NotSupported`, listing the supported values in the order given.
    pub fn not_supported(&mut self, field: &str, bad: &str, supported: &[&str]) {
        let quoted: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        let message = Self::with_detail(
            &format!("Unsupported value: {bad}"),
            &format!("supported values: {}", quoted.join(", ")),
        );
        self.push("FieldValueNotSupported", field, message);
    }

    /// `field.TooLong`.
    pub fn too_long(&mut self, field: &str, max: usize) {
        let message = format!("Too long: must have at most {max} bytes");
        self.push("FieldValueTooLong", field, message);
    }

    /// An enumerated string: empty is required, others must be listed.
    pub fn one_of(&mut self, value: &Value, field: &str, supported: &[&str]) {
        let text = self.text(value, field);
        if text.is_empty() {
            if value.is_null() || value.is_string() {
                self.required(field, "");
            }
        } else if !supported.contains(&text) {
            self.not_supported(field, &quote(text), supported);
        }
    }

    fn wrong_type(&mut self, value: &Value, field: &str, expected: &str) {
        self.invalid(
            field,
            &quote(json_kind(value)),
            &format!("must be {expected}"),
        );
    }

    /// A list; empty when absent, null or wrong-typed.
    pub fn list<'a>(&mut self, value: &'a Value, field: &str) -> &'a [Value] {
        match value {
            Value::Array(items) => items,
            Value::Null => &[],
            other => {
                self.wrong_type(other, field, "a list");
                &[]
            }
        }
    }

    /// An object; `None` when absent, null or wrong-typed.
    pub fn map<'a>(&mut self, value: &'a Value, field: &str) -> Option<&'a Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            Value::Null => None,
            other => {
                self.wrong_type(other, field, "an object");
                None
            }
        }
    }

    /// Whether a list element or nested struct can be walked: an object or
    /// null (Go's zero value); anything else is a problem.
    pub fn walkable(&mut self, value: &Value, field: &str) -> bool {
        value.is_null() || self.map(value, field).is_some()
    }

    /// A string; empty when absent, null or wrong-typed.
    pub fn text<'a>(&mut self, value: &'a Value, field: &str) -> &'a str {
        match value {
            Value::String(s) => s,
            Value::Null => "",
            other => {
                self.wrong_type(other, field, "a string");
                ""
            }
        }
    }

    /// An integer; `None` when absent, null or wrong-typed.
    pub fn int(&mut self, value: &Value, field: &str) -> Option<i64> {
        match value {
            Value::Null => None,
            Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
            other => {
                self.wrong_type(other, field, "an integer");
                None
            }
        }
    }

    /// A boolean; false when absent, null or wrong-typed.
    pub fn flag(&mut self, value: &Value, field: &str) -> bool {
        match value {
            Value::Bool(b) => *b,
            Value::Null => false,
            other => {
                self.wrong_type(other, field, "a boolean");
                false
            }
        }
    }

    /// A map of strings (labels, selectors); wrong-typed values are
    /// problems at `field[key]`.
    pub fn string_map<'a>(&mut self, value: &'a Value, field: &str) -> BTreeMap<&'a str, &'a str> {
        let mut out = BTreeMap::new();
        for (key, v) in self.map(value, field).into_iter().flatten() {
            let text = self.text(v, &format!("{field}[{key}]"));
            out.insert(key.as_str(), text);
        }
        out
    }

    /// Fails a non-negative integer (`ValidateNonnegativeField`).
    pub fn non_negative(&mut self, value: &Value, field: &str) {
        if let Some(n) = self.int(value, field).filter(|n| *n < 0) {
            self.invalid(field, &n.to_string(), "must be greater than or equal to 0");
        }
    }

    /// Each message of `errors` as an invalid `bad` at `field`.
    pub fn each_invalid(&mut self, field: &str, bad: &str, errors: Vec<String>) {
        for e in errors {
            self.invalid(field, bad, &e);
        }
    }

    /// Label keys and values (`ValidateLabels`).
    pub fn labels(&mut self, value: &Value, field: &str) {
        for (key, v) in self.string_map(value, field) {
            self.each_invalid(field, &quote(key), qualified_name_errors(key));
            self.each_invalid(field, &quote(v), label_value_errors(v));
        }
    }

    /// A `metav1.LabelSelector` (`ValidateLabelSelector`).
    pub fn label_selector(&mut self, selector: &Value, field: &str) {
        if self.map(selector, field).is_none() {
            return;
        }
        self.labels(&selector["matchLabels"], &format!("{field}.matchLabels"));
        let path = format!("{field}.matchExpressions");
        for (i, expression) in self
            .list(&selector["matchExpressions"], &path)
            .iter()
            .enumerate()
        {
            let at = format!("{path}[{i}]");
            if self.walkable(expression, &at) {
                self.selector_requirement(expression, &at);
            }
        }
    }

    fn selector_requirement(&mut self, requirement: &Value, at: &str) {
        let values_path = format!("{at}.values");
        let values = self.list(&requirement["values"], &values_path);
        let operator = self.text(&requirement["operator"], &format!("{at}.operator"));
        match operator {
            "In" | "NotIn" if values.is_empty() => self.required(
                &values_path,
                "must be specified when `operator` is 'In' or 'NotIn'",
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => self.forbidden(
                &values_path,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => self.invalid(
                &format!("{at}.operator"),
                &quote(other),
                "not a valid selector operator",
            ),
        }
        let key = self.text(&requirement["key"], &format!("{at}.key"));
        self.each_invalid(
            &format!("{at}.key"),
            &quote(key),
            qualified_name_errors(key),
        );
        for (i, value) in values.iter().enumerate() {
            let field = format!("{values_path}[{i}]");
            let value = self.text(value, &field);
            self.each_invalid(&field, &quote(value), label_value_errors(value));
        }
    }
}

/// The strategy of the built-in `kind`, for the tests of its checks.
#[cfg(test)]
pub(crate) fn strategy(kind: &str) -> &'static dyn crate::strategy::Strategy {
    crate::Registry::builtin()
        .types()
        .iter()
        .find(|t| t.kind == kind)
        .map(|t| t.strategy)
        .expect("a built-in kind")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_print_as_go_prints_them() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(go_value(&json!("web")), "\"web\"");
        assert_eq!(go_value(&json!(8080)), "8080");
        assert_eq!(
            go_value(&json!({"b": "2", "a": "1"})),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
        );
        assert_eq!(go_value(&json!(["8.8.8.8"])), "[]string{\"8.8.8.8\"}");
    }

    #[test]
    fn wrong_types_are_problems_not_panics() {
        let mut check = Check::default();
        assert!(check.list(&json!("x"), "spec.containers").is_empty());
        assert!(check.map(&json!(5), "spec").is_none());
        assert_eq!(check.text(&json!(["a"]), "spec.nodeName"), "");
        assert_eq!(check.int(&json!(1.5), "spec.replicas"), None);
        assert_eq!(
            check.problems[1],
            (
                "FieldValueInvalid",
                "spec".to_owned(),
                "Invalid value: \"number\": must be an object".to_owned()
            )
        );
        assert_eq!(check.problems.len(), 4);
        for kind in [
            "Pod",
            "Deployment",
            "ReplicaSet",
            "DaemonSet",
            "StatefulSet",
            "ReplicationController",
            "Service",
            "ConfigMap",
            "Secret",
            "Namespace",
        ] {
            for body in [
                json!({"spec": "x"}),
                json!({"spec": {"template": 5, "containers": {"a": 1}, "ports": "x", "selector": []}}),
                json!({"spec": {"template": {"spec": {"containers": [5, null, {"ports": [1], "env": "x", "resources": {"limits": []}}]}}}}),
                json!({"data": [], "stringData": 1, "type": 5}),
                json!(null),
            ] {
                let _ = strategy(kind).validate(&body);
            }
        }
    }

    #[test]
    fn selectors_are_validated_as_upstream() {
        let mut check = Check::default();
        check.label_selector(
            &json!({"matchLabels": {"app": "-x"}, "matchExpressions": [
                {"key": "tier", "operator": "In"},
                {"key": "tier", "operator": "Exists", "values": ["a"]},
                {"key": "tier", "operator": "Equals", "values": ["a"]}]}),
            "spec.selector",
        );
        let fields: Vec<&str> = check.problems.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.selector.matchLabels",
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator"
            ]
        );
        assert_eq!(
            check.problems[3].2,
            "Invalid value: \"Equals\": not a valid selector operator"
        );
    }
}
