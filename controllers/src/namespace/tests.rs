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

fn remains(plural: &str, items: Vec<Vec<&str>>) -> Remains {
    Remains {
        group: String::new(),
        plural: plural.into(),
        items: items
            .into_iter()
            .map(|f| f.into_iter().map(String::from).collect())
            .collect(),
    }
}

fn at(time: &str) -> Time {
    Time(time.parse().unwrap())
}

#[test]
fn conditions_say_what_remains_as_upstream_and_move_only_when_their_status_does() {
    let left = [
        remains("pods", vec![vec![], vec!["example.com/hold"]]),
        remains("configmaps", vec![]),
    ];
    let first = conditions(&[], &left, &[], &at("2026-12-01T10:00:00Z")).unwrap();
    let summary: Vec<(&str, &str, &str)> = first
        .iter()
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered"
            ),
            (
                "NamespaceDeletionGroupVersionParsingFailure",
                "False",
                "ParsedGroupVersions"
            ),
            ("NamespaceDeletionContentFailure", "False", "ContentDeleted"),
            ("NamespaceContentRemaining", "True", "SomeResourcesRemain"),
            (
                "NamespaceFinalizersRemaining",
                "True",
                "SomeFinalizerRemain"
            ),
        ]
    );
    assert_eq!(
        first[3].message.as_deref(),
        Some("Some resources are remaining: pods. has 2 resource instances")
    );
    assert_eq!(
        first[4].message.as_deref(),
        Some("Some finalizers are remaining: example.com/hold in 1 resource instances")
    );
    // The same pass again changes nothing.
    assert_eq!(
        conditions(&first, &left, &[], &at("2026-12-01T10:00:05Z")),
        None
    );
    // One pod left: the message changes, its transition time does not.
    let fewer = [remains("pods", vec![vec!["example.com/hold"]])];
    let second = conditions(&first, &fewer, &[], &at("2026-12-01T10:00:10Z")).unwrap();
    assert_eq!(
        second[3].last_transition_time,
        first[3].last_transition_time
    );
    // All gone, one kind failing: the remaining conditions turn False (and
    // move), the content failure turns True.
    let failure = "ApiError: forbidden".to_string();
    let third = conditions(&second, &[], &[failure], &at("2026-12-01T10:00:20Z")).unwrap();
    assert_eq!(third[3].status, "False");
    assert_eq!(
        third[3].message.as_deref(),
        Some("All content successfully removed")
    );
    assert_eq!(
        third[3].last_transition_time,
        Some(at("2026-12-01T10:00:20Z"))
    );
    assert_eq!(third[2].status, "True");
    assert_eq!(
        third[2].message.as_deref(),
        Some("Failed to delete all resource types, 1 remaining: ApiError: forbidden")
    );
}
