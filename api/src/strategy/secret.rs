//! Secrets: `Opaque` unless they say otherwise.

use serde_json::{json, Value};

use super::Strategy;
use crate::defaults::default;
use crate::specs::Problem;
use crate::table::{age, col, count, name, Column, I, S};

/// The Secret strategy.
#[derive(Debug, Clone, Copy)]
pub struct Secret;

impl Strategy for Secret {
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
