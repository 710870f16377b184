use super::*;

fn pod(name: &str, extra: Value) -> Pod {
    let mut object = json!({
        "metadata": {"name": name, "labels": {"app": "web"}, "creationTimestamp": "2026-11-23T10:00:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T10:00:10Z"}]},
    });
    merge(&mut object, extra);
    serde_json::from_value(object).unwrap()
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

#[test]
fn differences_and_slow_start() {
    assert_eq!(diff(3, 1), 2);
    assert_eq!(diff(1, 3), -2);
    assert_eq!(diff(10_000, 0), BURST as i64);
    assert_eq!(batches(10), [1, 2, 4, 3]);
    assert_eq!(batches(1), [1]);
    assert!(batches(0).is_empty());
}

#[test]
fn the_least_useful_pods_are_deleted_first() {
    let unscheduled = pod(
        "unscheduled",
        json!({"spec": {"nodeName": null}, "status": {"phase": "Pending", "conditions": []}}),
    );
    let pending = pod(
        "pending",
        json!({"status": {"phase": "Pending", "conditions": []}}),
    );
    let not_ready = pod(
        "not-ready",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    let ready_late = pod(
        "ready-late",
        json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T10:05:00Z"}]}}),
    );
    let ready_early = pod("ready-early", json!({}));
    let crashy = pod(
        "crashy",
        json!({"status": {"containerStatuses": [{"name": "c", "image": "x", "imageID": "", "ready": true, "restartCount": 4}]}}),
    );
    let mut pods = [
        &ready_early,
        &crashy,
        &ready_late,
        &not_ready,
        &pending,
        &unscheduled,
    ];
    pods.sort_by_key(|p| deletion_rank(p));
    let order: Vec<&str> = pods
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "unscheduled",
            "pending",
            "not-ready",
            "ready-late",
            "crashy",
            "ready-early"
        ]
    );
}

#[test]
fn status_counts_ready_available_and_labelled_pods() {
    let now: jiff::Timestamp = "2026-11-23T10:00:30Z".parse().unwrap();
    let ready = pod("a", json!({}));
    let fresh = pod(
        "b",
        json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T10:00:25Z"}]}}),
    );
    let unlabelled = pod(
        "c",
        json!({"metadata": {"labels": {"app": "other"}}, "status": {"conditions": []}}),
    );
    let template: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    let status = status(&template, 4, 10, &[&ready, &fresh, &unlabelled], now);
    assert_eq!(
        status,
        json!({"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1, "observedGeneration": 4})
    );
    let finished = pod("d", json!({"status": {"phase": "Succeeded"}}));
    assert!(!is_active(&finished));
    let leaving = pod(
        "e",
        json!({"metadata": {"deletionTimestamp": "2026-11-23T10:00:00Z"}}),
    );
    assert!(!is_active(&leaving));
}

#[test]
fn expectations_hold_until_seen() {
    let mut e = Expectations::default();
    assert!(e.satisfied("k"));
    e.expect("k", 2, HashSet::new());
    e.created("k");
    assert!(!e.satisfied("k"));
    e.created("k");
    assert!(e.satisfied("k"));
    e.expect("k", 0, ["u1".to_string()].into());
    assert!(!e.satisfied("k"));
    e.deleted("k", "u1");
    assert!(e.satisfied("k"));
}
