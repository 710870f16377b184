//! What each kind does on create, update and delete: upstream's
//! `rest.RESTCreateStrategy`, `RESTUpdateStrategy` and
//! `RESTDeleteStrategy`, one [`Strategy`] per kind, held by its registry
//! entry. The generic REST path calls these and never asks which kind it
//! serves; a new built-in kind is one module here plus its entry.
//!
//! Every method is pure: what needs I/O (a Service's ClusterIP and node
//! ports) is answered as data ([`Settled::Needs`], [`Held`]) that the
//! apiserver carries out.

use serde_json::Value;

use crate::immutable::Violation;
use crate::services::{Held, Settled};
use crate::specs::Problem;
use crate::table::{self, Column};

mod configmap;
mod daemonset;
mod deployment;
mod endpoints;
mod endpointslice;
mod event;
mod ingress;
mod ipaddress;
mod lease;
mod namespace;
mod node;
mod pod;
mod replicaset;
mod replicationcontroller;
mod secret;
mod service;
mod serviceaccount;
mod statefulset;

pub use configmap::ConfigMap;
pub use daemonset::DaemonSet;
pub use deployment::Deployment;
pub use endpoints::Endpoints;
pub use endpointslice::EndpointSlice;
pub use event::Event;
pub use ingress::Ingress;
pub use ipaddress::IpAddress;
pub use lease::Lease;
pub use namespace::Namespace;
pub use node::Node;
pub use pod::Pod;
pub use replicaset::ReplicaSet;
pub use replicationcontroller::ReplicationController;
pub use secret::Secret;
pub use service::Service;
pub use serviceaccount::ServiceAccount;
pub use statefulset::StatefulSet;

/// Why a subresource request is refused, as the apiserver answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 409 with this message.
    Conflict(String),
    /// 422: a required or invalid field (field path, message).
    Invalid(&'static str, String, String),
    /// 400 with this message.
    BadRequest(String),
    /// The kind does not serve this (405).
    Unsupported,
}

/// How one kind is created, updated, validated and deleted.
///
/// The defaults describe a plain kind (a ConfigMap): written whole, no
/// defaults beyond the metadata's, deleted at once.
pub trait Strategy: Send + Sync + std::fmt::Debug {
    /// Clears what a client may not set at create (upstream's
    /// `PrepareForCreate`): the status its controller owns, or sets what
    /// the server starts it with.
    fn prepare_for_create(&self, object: &mut Value) {
        if let Some(status) = self.initial_status() {
            reset_status(object, status);
        }
    }

    /// Carries over, on an update of the object itself, what only its
    /// subresources write (the status, behind `/status`).
    fn prepare_for_update(&self, old: &Value, new: &mut Value) {
        if self.initial_status().is_some() {
            keep_status(old, new);
        }
    }

    /// The status a create starts with, for the kinds whose status is
    /// their controller's, written through `/status` alone (upstream's
    /// status strategies); `None` for kinds written whole.
    fn initial_status(&self) -> Option<Value> {
        None
    }

    /// Keeps, on an update through `/status`, everything but the status
    /// (upstream's status strategies).
    fn prepare_for_status_update(&self, old: &Value, new: &mut Value) {
        *new = with_status(old, new);
    }

    /// Keeps, on an update through `/finalize`, everything but
    /// `spec.finalizers`; kinds without the subresource change nothing.
    fn prepare_for_finalize(&self, old: &Value, new: &mut Value) {
        *new = old.clone();
    }

    /// Fills in defaults, at create and at update, as upstream's defaulters
    /// and defaulting admission plugins do. Never panics on a wrong-typed
    /// field: what is not an object is left for validation.
    fn defaults(&self, _object: &mut Value) {}

    /// The problems of the object's spec (422 causes).
    fn validate(&self, _object: &Value) -> Vec<Problem> {
        Vec::new()
    }

    /// What an update changes that it may not (422 causes).
    fn validate_update(&self, _old: &Value, _new: &Value) -> Vec<Violation> {
        Vec::new()
    }

    /// The grace period of a DELETE that asked for `asked` seconds
    /// (upstream's `CheckGracefulDelete`); 0 removes the object at once.
    fn grace_period(&self, _object: &Value, _asked: Option<i64>) -> i64 {
        0
    }

    /// Whether a terminating object still has content to delete before it
    /// goes (a namespace's `spec.finalizers`).
    fn holds_content(&self, _object: &Value) -> bool {
        false
    }

    /// What a DELETE marks besides `deletionTimestamp` (a namespace's
    /// `Terminating` phase).
    fn mark_terminating(&self, _object: &mut Value) {}

    /// The columns of its Table, as upstream's printer for the kind (what
    /// `kubectl get` shows); Name and Age for a kind without one.
    fn columns(&self) -> &'static [Column] {
        table::NAME_AGE
    }

    /// An object's row of its Table: one cell per column.
    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![table::name(object), table::age(object, now)]
    }

    /// The fields a field selector may name besides `metadata.name` and
    /// (for namespaced kinds) `metadata.namespace`, as upstream's
    /// `GetAttrs`.
    fn fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// The selectable value of `field` where it is not simply the string
    /// at its path (upstream's `ToSelectableFields`): a computed field, or
    /// a boolean or integer whose absence reads as its zero value. `None`
    /// reads the string at the path, absent as empty.
    fn field(&self, _object: &Value, _field: &str) -> Option<String> {
        None
    }

    /// The label selector of the pods it controls, as a `LabelSelector`
    /// (what `/scale` reports).
    fn selector(&self, object: &Value) -> Value {
        object["spec"]["selector"].clone()
    }

    /// Settles what the object must hold from the cluster's allocators
    /// (a Service's ClusterIP and node ports) for a create (`current`
    /// None) or an update, given what is `reserved` for this request.
    fn settle(&self, _current: Option<&Value>, _next: &mut Value, _reserved: &Held) -> Settled {
        Settled::Done
    }

    /// What a stored object holds from the allocators (released when it
    /// goes).
    fn held(&self, _object: &Value) -> Held {
        Held::default()
    }

    /// The object bound as `binding` (a `Binding`) asks, at `now`
    /// (`pods/binding`).
    fn bind(&self, _object: &Value, _binding: &Value, _now: &str) -> Result<Value, Refusal> {
        Err(Refusal::Unsupported)
    }
}

/// The strategy of kinds with no rules of their own.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl Strategy for Plain {}

/// `object` with `from`'s status (none when `from` has none): with `old`
/// and `new`, what an update through `/status` writes.
pub fn with_status(object: &Value, from: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        match from.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    object
}

/// Keeps `old`'s status on `new`: an update of the object itself, for the
/// kinds whose status is written through `/status` alone.
pub fn keep_status(old: &Value, new: &mut Value) {
    *new = with_status(new, old);
}

/// Sets the status a create starts with, whatever the client sent.
pub fn reset_status(object: &mut Value, empty: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert("status".into(), empty);
    }
}

#[cfg(test)]
pub(crate) mod conformance;

#[cfg(test)]
mod tests {
    use super::conformance::{check, Case};
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_kinds_are_written_whole() {
        check(Case {
            strategy: &Plain,
            object: json!({"metadata": {"name": "c"}, "data": {"k": "v"}}),
            resets_status: false,
            status_subresource: false,
            spec_update: json!({"data": {"k": "w"}}),
            immutable: vec![],
        });
        let (old, mut new) = (json!({"spec": {"finalizers": ["a"]}}), json!({"spec": {}}));
        Plain.prepare_for_finalize(&old, &mut new);
        assert_eq!(new, old);
        assert_eq!(Plain.bind(&old, &old, "now"), Err(Refusal::Unsupported));
    }
}
