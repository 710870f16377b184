//! Secrets: `Opaque` unless they say otherwise; `stringData` is written
//! into `data` (encoded) and not kept, as upstream's conversion does, a
//! key in both taking the `stringData` value.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::default;
use crate::specs::Problem;
use crate::table::{age, col, count, name, Column, I, S};

/// The Secret strategy.
#[derive(Debug, Clone, Copy)]
pub struct Secret;

/// Moves `stringData` into `data`, base64-encoded (a `stringData` that is
/// not an object of strings is left for validation to refuse).
fn merge_string_data(object: &mut Value) {
    use base64::Engine;
    let well_formed = object["stringData"]
        .as_object()
        .is_some_and(|o| o.values().all(Value::is_string));
    if !well_formed || !object["data"].is_object() && !object["data"].is_null() {
        return;
    }
    let Some(Value::Object(strings)) = object.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !object["data"].is_object() {
        object["data"] = json!({});
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        object["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

impl Strategy for Secret {
    fn prepare_for_create(&self, object: &mut Value) {
        merge_string_data(object);
    }

    fn prepare_for_update(&self, _old: &Value, new: &mut Value) {
        merge_string_data(new);
    }

    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Name", S, 0),
            col("Type", S, 0),
            col("Data", I, 0),
            col("Age", S, 0),
        ];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            name(object),
            json!(object["type"].as_str().unwrap_or("Opaque")),
            json!(count(&object["data"])),
            age(object, now),
        ]
    }

    fn fields(&self) -> &'static [&'static str] {
        &["type"]
    }

    fn defaults(&self, object: &mut Value) {
        default(object, "type", json!("Opaque"));
    }

    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::secret(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_is_written_into_data() {
        let mut secret = json!({"metadata": {"name": "s"}, "data": {"a": "eA==", "b": "eQ=="},
                                "stringData": {"b": "two", "c": "three"}});
        Secret.prepare_for_create(&mut secret);
        assert_eq!(
            secret["data"],
            json!({"a": "eA==", "b": "dHdv", "c": "dGhyZWU="})
        );
        assert!(secret.get("stringData").is_none());
    }
    use crate::strategy::conformance::{check, Case};

    #[test]
    fn conformance() {
        check(Case {
            strategy: &Secret,
            object: json!({"metadata": {"name": "s"}, "data": {"k": "dg=="}}),
            resets_status: false,
            status_subresource: false,
            spec_update: json!({"data": {"k": "dw=="}}),
            immutable: vec![],
        });
        let mut secret = json!({"metadata": {"name": "s"}});
        Secret.defaults(&mut secret);
        assert_eq!(secret["type"], "Opaque");
    }
}
