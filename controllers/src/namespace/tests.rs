use super::*;

fn namespace(extra: serde_json::Value) -> Namespace {
    let mut object = json!({"metadata": {"name": "shop"}, "spec": {"finalizers": [FINALIZER]}});
    if let (Some(o), Some(e)) = (object.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            match (o.get_mut(k), v) {
                (Some(serde_json::Value::Object(base)), serde_json::Value::Object(more)) => {
                    base.extend(more.clone())
                }
                _ => {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
    }
    serde_json::from_value(object).unwrap()
}

const DELETED: &str = "2026-12-01T10:00:00Z";

#[test]
fn only_a_namespace_being_deleted_and_held_is_emptied() {
    assert!(start(&namespace(json!({}))).is_empty(), "not being deleted");
    let deleted = namespace(json!({"metadata": {"deletionTimestamp": DELETED}}));
    assert_eq!(
        start(&deleted),
        [Action::MarkTerminating, Action::DeleteContent]
    );
    let terminating = namespace(json!({
        "metadata": {"deletionTimestamp": DELETED},
        "status": {"phase": "Terminating"},
    }));
    assert_eq!(start(&terminating), [Action::DeleteContent]);
    let finalized = namespace(json!({
        "metadata": {"deletionTimestamp": DELETED},
        "spec": {"finalizers": []},
    }));
    assert!(start(&finalized).is_empty(), "no longer ours to finalize");
}

fn pod(phase: &str, grace: i64) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [], "terminationGracePeriodSeconds": grace},
        "status": {"phase": phase},
    }))
    .unwrap()
}

#[test]
fn pods_are_given_their_grace_period_from_the_namespaces_deletion() {
    let pods = [pod("Running", 30), pod("Pending", 10), pod("Succeeded", 90)];
    assert_eq!(pod_estimate(&pods, 0), 30, "finished pods do not count");
    assert_eq!(pod_estimate(&pods, 29), 30);
    assert_eq!(pod_estimate(&pods, 30), 0, "the grace period has passed");
    assert_eq!(pod_estimate(&[], 0), 0);
}

#[test]
fn what_is_left_decides_between_finalizing_waiting_and_failing() {
    let none: Vec<Vec<String>> = Vec::new();
    let plain = vec![Vec::new()];
    let held = vec![vec!["example.com/keep".to_string()]];
    assert_eq!(left_of_kind(30, &none), Left::Nothing, "all gone");
    assert_eq!(left_of_kind(30, &plain), Left::Waiting(30));
    assert_eq!(
        left_of_kind(0, &held),
        Left::Waiting(FINALIZER_ESTIMATE),
        "finalizers are given time"
    );
    assert_eq!(left_of_kind(0, &plain), Left::Unexpected);

    let kind = |k: &str, l: Left| (k.to_string(), l);
    assert_eq!(
        finish(&[
            kind("pods", Left::Nothing),
            kind("configmaps", Left::Nothing)
        ]),
        Outcome::Finalize
    );
    assert_eq!(
        finish(&[
            kind("pods", Left::Waiting(30)),
            kind("widgets", Left::Waiting(FINALIZER_ESTIMATE))
        ]),
        Outcome::WaitFor(Duration::from_secs(16)),
        "half the longest estimate, and a second"
    );
    assert_eq!(
        finish(&[
            kind("pods", Left::Waiting(30)),
            kind("configmaps", Left::Unexpected)
        ]),
        Outcome::Unexpected(vec!["configmaps".into()])
    );
}
