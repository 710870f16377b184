//! What a DELETE does to an object, as upstream decides it: remove it now,
//! or mark it (`deletionTimestamp`) and leave the rest to others — a bound
//! Pod's kubelet, which stops its containers within the grace period and
//! then deletes it for good; the garbage collector, for the
//! `foregroundDeletion` and `orphan` finalizers that the propagation policy
//! adds; any other finalizer's owner.

use serde_json::{json, Map, Value};

use crate::strategy::Strategy;

/// The finalizer of a Foreground deletion: the owner goes after its
/// blocking dependents.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an Orphan deletion: the dependents lose their owner
/// reference, then the owner goes.
pub const ORPHAN: &str = "orphan";

/// How dependents go (`propagationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// The owner goes now; the garbage collector deletes the dependents.
    #[default]
    Background,
    /// The dependents go first.
    Foreground,
    /// The dependents stay, without their owner reference.
    Orphan,
}

impl Propagation {
    /// Parses `propagationPolicy` (and the legacy `orphanDependents`).
    pub fn parse(options: &Value) -> Result<Self, String> {
        match options["propagationPolicy"].as_str() {
            None if options["orphanDependents"] == json!(true) => Ok(Self::Orphan),
            None | Some("Background") => Ok(Self::Background),
            Some("Foreground") => Ok(Self::Foreground),
            Some("Orphan") => Ok(Self::Orphan),
            Some(other) => Err(format!(
                "propagationPolicy {other:?} is not one of Background, Foreground, Orphan"
            )),
        }
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Remove the object from the store.
    Remove,
    /// Store this marked version: it stays until its finalizers and its
    /// kubelet are done.
    Mark(Value),
    /// Nothing changes (already marked as asked).
    Unchanged,
}

/// Decides a DELETE of `current`, of the kind `strategy` serves, with
/// `options` (its DeleteOptions) at `now`.
pub fn decide(
    strategy: &dyn Strategy,
    current: &Value,
    options: &Value,
    now: jiff::Timestamp,
) -> Result<Decision, String> {
    let propagation = Propagation::parse(options)?;
    let asked = match &options["gracePeriodSeconds"] {
        Value::Null => None,
        value => Some(
            value
                .as_i64()
                .ok_or("gracePeriodSeconds must be an integer")?,
        ),
    };
    let grace = strategy.grace_period(current, asked);
    let metadata = &current["metadata"];
    let mut finalizers: Vec<String> = metadata["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    let added = match propagation {
        Propagation::Background => None,
        Propagation::Foreground => Some(FOREGROUND),
        Propagation::Orphan => Some(ORPHAN),
    };
    let mut changed = false;
    if let Some(added) = added {
        if metadata["deletionTimestamp"].is_null() && !finalizers.iter().any(|f| f == added) {
            finalizers.push(added.to_owned());
            changed = true;
        }
    }
    // A namespace stays while its spec's finalizers (the namespace
    // controller's "kubernetes") have its content to delete.
    let content = strategy.holds_content(current);
    let marked_at = metadata["deletionTimestamp"].as_str();
    let marked_grace = metadata["deletionGracePeriodSeconds"].as_i64();
    if finalizers.is_empty() && grace == 0 && !content {
        return Ok(Decision::Remove);
    }
    // The object stays: marked once, with the grace period shortened (never
    // lengthened) by a later delete.
    let keep_grace = match marked_grace {
        Some(old) if old <= grace => old,
        _ => grace,
    };
    if marked_at.is_some() && marked_grace == Some(keep_grace) && !changed {
        return Ok(Decision::Unchanged);
    }
    let mut marked = current.clone();
    let meta: &mut Map<String, Value> = marked["metadata"]
        .as_object_mut()
        .ok_or("an object without metadata")?;
    let deadline = now
        .checked_add(jiff::SignedDuration::from_secs(keep_grace))
        .map_err(|e| e.to_string())?;
    meta.insert("deletionTimestamp".into(), json!(format!("{deadline:.0}")));
    meta.insert("deletionGracePeriodSeconds".into(), json!(keep_grace));
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), json!(finalizers));
    }
    strategy.mark_terminating(&mut marked);
    Ok(Decision::Mark(marked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{Namespace, Plain, Pod};

    fn now() -> jiff::Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    fn pod(node: Option<&str>, phase: &str) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"nodeName": node, "terminationGracePeriodSeconds": 30}, "status": {"phase": phase}})
    }

    #[test]
    fn a_running_pod_is_marked_for_its_kubelet() {
        let Decision::Mark(marked) =
            decide(&Pod, &pod(Some("n1"), "Running"), &json!({}), now()).unwrap()
        else {
            panic!("not marked");
        };
        assert_eq!(
            marked["metadata"]["deletionTimestamp"],
            "2026-11-23T10:00:30Z"
        );
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
        // A shorter grace period shortens; a longer one changes nothing.
        let Decision::Mark(shorter) =
            decide(&Pod, &marked, &json!({"gracePeriodSeconds": 5}), now()).unwrap()
        else {
            panic!("not shortened");
        };
        assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 5);
        assert_eq!(
            decide(&Pod, &shorter, &json!({"gracePeriodSeconds": 60}), now()).unwrap(),
            Decision::Unchanged
        );
        // The kubelet's final delete, with grace 0, removes it.
        assert_eq!(
            decide(&Pod, &shorter, &json!({"gracePeriodSeconds": 0}), now()).unwrap(),
            Decision::Remove
        );
    }

    #[test]
    fn unbound_and_finished_pods_and_other_kinds_go_at_once() {
        assert_eq!(
            decide(&Pod, &pod(None, "Pending"), &json!({}), now()).unwrap(),
            Decision::Remove
        );
        assert_eq!(
            decide(&Pod, &pod(Some("n1"), "Succeeded"), &json!({}), now()).unwrap(),
            Decision::Remove
        );
        let cm = json!({"metadata": {"name": "c"}});
        assert_eq!(
            decide(&Plain, &cm, &json!({"gracePeriodSeconds": 30}), now()).unwrap(),
            Decision::Remove
        );
    }

    #[test]
    fn a_namespace_terminates_until_its_content_is_gone() {
        let ns = json!({"metadata": {"name": "shop"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let Decision::Mark(marked) = decide(&Namespace, &ns, &json!({}), now()).unwrap() else {
            panic!("not marked");
        };
        assert_eq!(marked["status"]["phase"], "Terminating");
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        let finalized = json!({"metadata": {"name": "shop"}, "spec": {"finalizers": []}});
        assert_eq!(
            decide(&Namespace, &finalized, &json!({}), now()).unwrap(),
            Decision::Remove
        );
    }

    #[test]
    fn propagation_adds_the_collectors_finalizers() {
        let rs = json!({"metadata": {"name": "r", "finalizers": ["example.com/x"]}});
        let Decision::Mark(marked) = decide(
            &Plain,
            &rs,
            &json!({"propagationPolicy": "Foreground"}),
            now(),
        )
        .unwrap() else {
            panic!("not marked");
        };
        assert_eq!(
            marked["metadata"]["finalizers"],
            json!(["example.com/x", FOREGROUND])
        );
        assert_eq!(
            marked["metadata"]["deletionTimestamp"],
            "2026-11-23T10:00:00Z"
        );
        let Decision::Mark(orphaned) = decide(
            &Plain,
            &json!({"metadata": {}}),
            &json!({"orphanDependents": true}),
            now(),
        )
        .unwrap() else {
            panic!("not marked");
        };
        assert_eq!(orphaned["metadata"]["finalizers"], json!([ORPHAN]));
        // Marked already: a second delete changes nothing.
        assert_eq!(
            decide(&Plain, &marked, &json!({}), now()).unwrap(),
            Decision::Unchanged
        );
        assert!(decide(
            &Plain,
            &rs,
            &json!({"propagationPolicy": "Sideways"}),
            now()
        )
        .is_err());
    }
}
