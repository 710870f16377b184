//! Namespaces: created `Active` with the `kubernetes` finalizer in their
//! spec, which holds a terminating namespace until the namespace
//! controller has deleted its content and removed it through `/finalize`.

use serde_json::{json, Value};

use super::{reset_status, with_status, Strategy};
use crate::defaults::child;
use crate::specs::Problem;
use crate::table::{age, col, name, text, Column, S};

/// The finalizer of a namespace's content.
pub const CONTENT_FINALIZER: &str = "kubernetes";

/// The Namespace strategy.
#[derive(Debug, Clone, Copy)]
pub struct Namespace;

fn finalizers(object: &Value) -> &Value {
    &object["spec"]["finalizers"]
}

/// `new` with `old`'s `spec.finalizers` (kept when `old` has none).
fn with_finalizers_of(new: &mut Value, old: &Value) {
    if let Some(spec) = child(new, "spec").and_then(Value::as_object_mut) {
        match old["spec"].get("finalizers") {
            Some(kept) => spec.insert("finalizers".into(), kept.clone()),
            None => spec.remove("finalizers"),
        };
    }
}

impl Strategy for Namespace {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[col("Name", S, 0), col("Status", S, 0), col("Age", S, 0)];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let phase = object["status"]["phase"].as_str().unwrap_or("Active");
        vec![name(object), json!(phase), age(object, now)]
    }

    /// `name` is upstream's legacy alias of `metadata.name`.
    fn fields(&self) -> &'static [&'static str] {
        &["status.phase", "name"]
    }

    fn field(&self, object: &Value, field: &str) -> Option<String> {
        (field == "name").then(|| text(&object["metadata"]["name"]))
    }

    fn validate(&self, object: &Value) -> Vec<Problem> {
        crate::specs::namespace(object)
    }

    fn prepare_for_create(&self, object: &mut Value) {
        reset_status(object, json!({"phase": "Active"}));
        if let Some(spec) = child(object, "spec") {
            let mut list: Vec<Value> = spec["finalizers"].as_array().cloned().unwrap_or_default();
            if !list.iter().any(|f| f == CONTENT_FINALIZER) {
                list.push(json!(CONTENT_FINALIZER));
            }
            spec["finalizers"] = json!(list);
        }
    }

    /// The status and `spec.finalizers` are the server's: written through
    /// `/status` and `/finalize`.
    fn prepare_for_update(&self, old: &Value, new: &mut Value) {
        *new = with_status(new, old);
        with_finalizers_of(new, old);
    }

    fn prepare_for_finalize(&self, old: &Value, new: &mut Value) {
        let mut only = old.clone();
        with_finalizers_of(&mut only, new);
        *new = only;
    }

    fn holds_content(&self, object: &Value) -> bool {
        finalizers(object).as_array().is_some_and(|f| !f.is_empty())
    }

    fn mark_terminating(&self, object: &mut Value) {
        if let Some(status) = child(object, "status") {
            status["phase"] = json!("Terminating");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::conformance::{check, Case};

    #[test]
    fn conformance() {
        check(Case {
            strategy: &Namespace,
            object: json!({"metadata": {"name": "shop"}, "status": {"phase": "Terminating"}}),
            resets_status: true,
            status_subresource: true,
            spec_update: json!({"metadata": {"labels": {"team": "a"}}}),
            immutable: vec![],
        });
    }

    #[test]
    fn finalizers_are_written_through_finalize_alone() {
        let mut created =
            json!({"metadata": {"name": "shop"}, "spec": {"finalizers": ["example.com/x"]}});
        Namespace.prepare_for_create(&mut created);
        assert_eq!(
            created["spec"]["finalizers"],
            json!(["example.com/x", "kubernetes"])
        );
        assert_eq!(created["status"]["phase"], "Active");
        let mut put = json!({"metadata": {"name": "shop"}, "spec": {"finalizers": []}});
        Namespace.prepare_for_update(&created, &mut put);
        assert_eq!(put["spec"]["finalizers"], created["spec"]["finalizers"]);
        let mut finalize = json!({"metadata": {"name": "other", "labels": {"a": "b"}}, "spec": {"finalizers": []}});
        Namespace.prepare_for_finalize(&created, &mut finalize);
        assert_eq!(finalize["spec"]["finalizers"], json!([]));
        assert_eq!(finalize["metadata"], created["metadata"]);
        assert!(Namespace.holds_content(&created) && !Namespace.holds_content(&finalize));
        let mut marked = json!({"status": "x"});
        Namespace.mark_terminating(&mut marked);
        assert_eq!(marked["status"], "x");
    }
}
