use super::*;

use k8s_openapi::api::core::v1::Pod;

const POD: usize = 0;
const RS: usize = 6;
const DEPLOY: usize = 7;

fn owner(uid: &str, kind: Option<usize>, block: bool) -> Owner {
    Owner {
        uid: uid.into(),
        kind,
        name: format!("{uid}-name"),
        block,
    }
}

fn v(kind: usize, owners: &[Owner], deleting: bool, finalizers: &[&str]) -> Vertex {
    Vertex {
        kind,
        namespace: "default".into(),
        name: "x".into(),
        resource_version: "7".into(),
        owners: owners.to_vec(),
        deleting,
        finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
    }
}

fn rs_of(uid: &str) -> Owner {
    owner(uid, Some(RS), true)
}

/// Counts the actions by kind: (deletes, owner removals, finalizer
/// removals, requeues, unblocks).
fn count(actions: &[Action]) -> (usize, usize, usize, usize, usize) {
    let mut c = (0, 0, 0, 0, 0);
    for a in actions {
        match a {
            Action::Delete(..) => c.0 += 1,
            Action::RemoveOwners(..) => c.1 += 1,
            Action::RemoveFinalizer { .. } => c.2 += 1,
            Action::Requeue(_) => c.3 += 1,
            Action::Unblock(_) => c.4 += 1,
        }
    }
    c
}

#[test]
fn dependents_of_owners_known_gone_are_deleted_in_the_background() {
    let mut g = Graph::default();
    g.upsert(
        "rs",
        v(RS, &[owner("deploy", Some(DEPLOY), true)], false, &[]),
    );
    g.upsert("pod", v(POD, &[rs_of("rs")], false, &[]));
    assert!(decide(&g, "pod").is_empty(), "its owner is there");
    assert!(
        decide(&g, "rs").is_empty(),
        "an owner not in the graph is present until looked up"
    );
    assert_eq!(
        g.unknown_owners("rs")
            .into_iter()
            .map(|(o, _)| o.uid)
            .collect::<Vec<_>>(),
        ["deploy"]
    );
    g.mark_gone("deploy");
    assert!(g.unknown_owners("rs").is_empty());
    let actions = decide(&g, "rs");
    assert_eq!(count(&actions), (1, 0, 0, 0, 0));
    assert!(matches!(&actions[0], Action::Delete(t, Propagation::Background) if t.uid == "rs"));
    // The ReplicaSet's deletion event: its pod is looked at, and goes.
    assert_eq!(g.delete("rs"), ["pod"]);
    assert_eq!(count(&decide(&g, "pod")), (1, 0, 0, 0, 0));
}

#[test]
fn objects_without_followed_owners_stay() {
    let mut g = Graph::default();
    g.upsert("lonely", v(POD, &[], false, &[]));
    assert!(decide(&g, "lonely").is_empty(), "no owners");
    g.mark_gone("cr");
    g.upsert("foreign", v(POD, &[owner("cr", None, true)], false, &[]));
    assert!(
        decide(&g, "foreign").is_empty(),
        "an owner of a kind not followed counts as present"
    );
    assert!(
        g.unknown_owners("foreign").is_empty(),
        "and is not looked up"
    );
}

#[test]
fn a_dependent_with_an_owner_left_only_loses_the_gone_one() {
    let mut g = Graph::default();
    g.upsert("rs-a", v(RS, &[], false, &[]));
    g.upsert("pod", v(POD, &[rs_of("rs-a"), rs_of("rs-b")], false, &[]));
    g.mark_gone("rs-b");
    assert_eq!(
        decide(&g, "pod"),
        [Action::RemoveOwners(
            Target {
                kind: POD,
                namespace: "default".into(),
                name: "x".into(),
                uid: "pod".into()
            },
            vec!["rs-b".into()]
        )]
    );
}

#[test]
fn own_finalizers_choose_the_propagation() {
    let mut g = Graph::default();
    g.mark_gone("gone");
    g.upsert("o", v(RS, &[rs_of("gone")], false, &[ORPHAN]));
    g.upsert("f", v(RS, &[rs_of("gone")], false, &[FOREGROUND]));
    assert!(matches!(
        decide(&g, "o")[..],
        [Action::Delete(_, Propagation::Orphan)]
    ));
    assert!(matches!(
        decide(&g, "f")[..],
        [Action::Delete(_, Propagation::Foreground)]
    ));
    g.upsert("d", v(POD, &[rs_of("gone")], true, &[]));
    assert!(decide(&g, "d").is_empty(), "already being deleted");
}

#[test]
fn foreground_deletes_blocking_dependents_then_lets_the_owner_go() {
    let mut g = Graph::default();
    g.upsert("rs", v(RS, &[], true, &[FOREGROUND, "example.com/keep"]));
    g.upsert("a", v(POD, &[rs_of("rs")], false, &[]));
    g.upsert("b", v(POD, &[owner("rs", Some(RS), false)], false, &[]));
    // The owner requeues its blocking dependent; the dependent, whose only
    // owner waits for it, goes in the background (it has no dependents).
    assert_eq!(decide(&g, "rs"), [Action::Requeue("a".into())]);
    assert_eq!(count(&decide(&g, "a")), (1, 0, 0, 0, 0));
    assert!(matches!(
        decide(&g, "b")[..],
        [Action::Delete(_, Propagation::Background)]
    ));
    // Once no blocking dependent is left, the finalizer goes, the others stay.
    assert_eq!(g.delete("a"), ["rs"], "the waiting owner looks again");
    let actions = decide(&g, "rs");
    assert_eq!(count(&actions), (0, 0, 1, 0, 0));
    let Action::RemoveFinalizer {
        keep,
        resource_version,
        ..
    } = &actions[0]
    else {
        unreachable!()
    };
    assert_eq!(keep, &["example.com/keep".to_string()]);
    assert_eq!(resource_version, "7");
}

#[test]
fn a_foreground_deletion_cascades_through_dependents_with_dependents() {
    let mut g = Graph::default();
    g.upsert("deploy", v(DEPLOY, &[], true, &[FOREGROUND]));
    g.upsert(
        "rs",
        v(RS, &[owner("deploy", Some(DEPLOY), true)], false, &[]),
    );
    g.upsert("pod", v(POD, &[rs_of("rs")], false, &[]));
    assert!(matches!(
        decide(&g, "rs")[..],
        [Action::Delete(_, Propagation::Foreground)]
    ));
    // Now the ReplicaSet waits for its pod too: a dependent that deletes
    // its own dependents is not requeued by its owner.
    g.upsert(
        "rs",
        v(
            RS,
            &[owner("deploy", Some(DEPLOY), true)],
            true,
            &[FOREGROUND],
        ),
    );
    assert!(decide(&g, "deploy").is_empty());
    assert_eq!(decide(&g, "rs"), [Action::Requeue("pod".into())]);
}

#[test]
fn a_foreground_cycle_is_unblocked_before_deleting() {
    let mut g = Graph::default();
    g.upsert("a", v(RS, &[], true, &[FOREGROUND]));
    g.upsert("b", v(RS, &[rs_of("a")], false, &[]));
    g.upsert("c", v(RS, &[rs_of("b")], true, &[FOREGROUND]));
    assert_eq!(count(&decide(&g, "b")), (1, 0, 0, 0, 1));
}

#[test]
fn orphaning_releases_every_dependent_then_the_owner() {
    let mut g = Graph::default();
    g.upsert("rs", v(RS, &[], true, &[ORPHAN]));
    g.upsert("a", v(POD, &[rs_of("rs")], false, &[]));
    g.upsert("b", v(POD, &[rs_of("rs")], false, &[]));
    let actions = decide(&g, "rs");
    assert_eq!(count(&actions), (0, 2, 1, 0, 0));
    assert!(
        matches!(actions.last(), Some(Action::RemoveFinalizer { keep, .. }) if keep.is_empty())
    );
    g.upsert("a", v(POD, &[], false, &[]));
    g.upsert("b", v(POD, &[], false, &[]));
    assert_eq!(count(&decide(&g, "rs")), (0, 0, 1, 0, 0));
}

fn pod(uid: &str, owners: serde_json::Value, extra: serde_json::Value) -> Pod {
    let mut object = json!({"metadata": {"name": uid, "namespace": "default", "uid": uid, "ownerReferences": owners}});
    if let (Some(o), Some(e)) = (object["metadata"].as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::from_value(object).unwrap()
}

fn reference(uid: &str) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": uid, "uid": uid, "blockOwnerDeletion": true})
}

#[test]
fn events_queue_the_uids_whose_case_changed() {
    let mut g = Graph::default();
    let rs = pod("rs", json!([]), json!({}));
    // (A pod stands for any object: only its metadata is read.)
    assert!(g.apply(RS, &rs).is_empty(), "no owners: nothing to judge");
    let a = pod("a", json!([reference("rs")]), json!({}));
    assert!(g.apply(POD, &a).is_empty(), "its owner is there");
    let orphan = pod("b", json!([reference("unseen")]), json!({}));
    assert_eq!(g.apply(POD, &orphan), ["b"], "an owner not seen yet");
    // The owner starts a foreground deletion: it and its dependents.
    let deleting = pod(
        "rs",
        json!([]),
        json!({"deletionTimestamp": "2026-12-01T00:00:00Z", "finalizers": [FOREGROUND]}),
    );
    assert_eq!(g.apply(RS, &deleting), ["rs", "a"]);
    // A dependent letting go of it wakes it.
    let released = pod("a", json!([]), json!({}));
    assert_eq!(g.apply(POD, &released), ["rs"]);
    // The informer's events: an update, a deletion (what a relist that no
    // longer shows b reports), the end of the list.
    let released = std::sync::Arc::new(released);
    assert!(g
        .observe(
            POD,
            Event::Updated {
                old: released.clone(),
                new: released
            }
        )
        .is_empty());
    g.observe(POD, Event::Deleted(std::sync::Arc::new(orphan)));
    assert!(!g.synced());
    g.observe(POD, Event::<Pod>::Synced);
    assert!(g.get("b").is_none() && g.get("a").is_some());
}
