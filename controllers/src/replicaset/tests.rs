use super::*;
use crate::control::fake::merge;

fn pod(name: &str, extra: Value) -> Pod {
    let mut object = json!({
        "metadata": {"name": name, "labels": {"app": "web"}, "creationTimestamp": "2026-11-23T10:00:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T10:00:10Z"}]},
    });
    merge(&mut object, extra);
    serde_json::from_value(object).unwrap()
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

mod sync {
    //! The whole sync of a key, against fixed informers and a fake that
    //! counts what it writes.

    use super::*;
    use crate::control::fake::{status as error, Action, Fake};

    const UID: &str = "rs-uid";

    fn set(replicas: i64) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": UID, "generation": 2},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
            },
        }))
        .unwrap()
    }

    /// A pod of the namespace `default`, owned by the ReplicaSet.
    fn owned(name: &str, extra: Value) -> Pod {
        let reference = json!({"metadata": {"namespace": "default", "uid": format!("{name}-uid"), "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": UID, "controller": true}
        ]}});
        let mut object = serde_json::to_value(pod(name, reference)).unwrap();
        merge(&mut object, extra);
        serde_json::from_value(object).unwrap()
    }

    fn orphan(name: &str, extra: Value) -> Pod {
        let mut object = serde_json::to_value(owned(name, extra)).unwrap();
        object["metadata"]["ownerReferences"] = Value::Null;
        serde_json::from_value(object).unwrap()
    }

    fn controller(fake: Fake, sets: Vec<ReplicaSet>, pods: Vec<Pod>) -> Controller<Fake> {
        Controller::new(
            fake,
            Informer::fixed(sets),
            Informer::fixed(Vec::new()),
            Informer::fixed(pods),
            WorkQueue::default(),
        )
    }

    fn verbs(actions: &[Action]) -> Vec<(&str, &str)> {
        actions
            .iter()
            .map(|a| (a.verb, a.resource.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn missing_pods_are_created_once_from_the_template_and_owned() {
        let c = controller(
            Fake::default(),
            vec![set(3)],
            vec![owned("web-a", json!({}))],
        );
        c.sync("0/default/web").await.unwrap();
        let actions = c.control.take();
        assert_eq!(
            verbs(&actions),
            [
                ("create", "pods"),
                ("event", "ReplicaSet"),
                ("create", "pods"),
                ("event", "ReplicaSet"),
                ("patch_status", "replicasets"),
            ]
        );
        let pod = &actions[0].body;
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");
        assert_eq!(
            pod["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": UID, "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(actions[1].name, "SuccessfulCreate");
        assert_eq!(
            actions[4].body["status"],
            json!({"replicas": 1, "fullyLabeledReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 2})
        );
        // Until the cache shows the two new pods, the next sync creates
        // nothing more (only the status, still stale in the fixed cache).
        c.sync("0/default/web").await.unwrap();
        assert_eq!(verbs(&c.control.take()), [("patch_status", "replicasets")]);
    }

    #[tokio::test]
    async fn surplus_pods_go_least_useful_first_and_a_settled_set_writes_nothing() {
        let pods = vec![
            owned("ready", json!({})),
            owned(
                "pending",
                json!({"status": {"phase": "Pending", "conditions": []}}),
            ),
            owned(
                "unscheduled",
                json!({"spec": {"nodeName": null}, "status": {"phase": "Pending", "conditions": []}}),
            ),
        ];
        let c = controller(Fake::default(), vec![set(1)], pods);
        c.sync("0/default/web").await.unwrap();
        let actions = c.control.take();
        let deleted: Vec<&str> = actions
            .iter()
            .filter(|a| a.verb == "delete")
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(deleted, ["unscheduled", "pending"]);
        let events: Vec<&Value> = actions
            .iter()
            .filter(|a| a.verb == "event")
            .map(|a| &a.body)
            .collect();
        assert_eq!(events, ["Deleted pod: unscheduled", "Deleted pod: pending"]);

        let mut settled = set(1);
        settled.status = serde_json::from_value(json!({"replicas": 1, "fullyLabeledReplicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 2})).unwrap();
        let c = controller(
            Fake::default(),
            vec![settled],
            vec![owned("ready", json!({}))],
        );
        c.sync("0/default/web").await.unwrap();
        assert_eq!(c.control.take(), []);
    }

    #[tokio::test]
    async fn matching_orphans_are_adopted_and_pods_that_stopped_matching_released() {
        let pods = vec![
            orphan("stray", json!({})),
            orphan(
                "leaving",
                json!({"metadata": {"deletionTimestamp": "2026-11-23T10:00:00Z"}}),
            ),
            orphan("other", json!({"metadata": {"labels": {"app": "db"}}})),
            owned("relabelled", json!({"metadata": {"labels": {"app": "db"}}})),
        ];
        let c = controller(Fake::default(), vec![set(1)], pods);
        c.sync("0/default/web").await.unwrap();
        let patches: Vec<(String, Value)> = c
            .control
            .take()
            .into_iter()
            .filter(|a| a.verb == "patch")
            .map(|a| (a.name, a.body["metadata"]["ownerReferences"].clone()))
            .collect();
        assert_eq!(patches.len(), 2, "{patches:?}");
        let adopted = patches.iter().find(|(n, _)| n == "stray").unwrap();
        assert_eq!(adopted.1[0]["uid"], UID);
        let released = patches.iter().find(|(n, _)| n == "relabelled").unwrap();
        assert_eq!(released.1, json!([]));
    }

    #[tokio::test]
    async fn a_terminating_namespace_stops_creation_and_other_errors_are_retried() {
        let forbidden = Fake::failing(|a| (a.verb == "create").then(|| error(403, "Forbidden")));
        let c = controller(forbidden, vec![set(4)], vec![]);
        c.sync("0/default/web").await.unwrap();
        let actions = c.control.take();
        assert_eq!(
            verbs(&actions)[..2],
            [("create", "pods"), ("event", "ReplicaSet")]
        );
        assert_eq!(actions[1].name, "FailedCreate");
        // The slow start stopped at the first failure, and the creations
        // never tried are not waited for: the next sync tries again.
        c.sync("0/default/web").await.unwrap();
        assert_eq!(
            c.control
                .take()
                .iter()
                .filter(|a| a.verb == "create")
                .count(),
            1
        );

        let broken = Fake::failing(|a| (a.verb == "create").then(|| error(500, "InternalError")));
        let c = controller(broken, vec![set(4)], vec![]);
        assert!(c.sync("0/default/web").await.is_err());
    }

    #[tokio::test]
    async fn a_replication_controller_owns_its_pods_by_its_map_selector() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "old", "namespace": "default", "uid": "rc-uid", "generation": 1},
            "spec": {"replicas": 1, "selector": {"app": "web"}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}},
        }))
        .unwrap();
        let c = Controller::new(
            Fake::default(),
            Informer::fixed(vec![]),
            Informer::fixed(vec![rc]),
            Informer::fixed(vec![]),
            WorkQueue::default(),
        );
        c.sync("1/default/old").await.unwrap();
        let actions = c.control.take();
        assert_eq!(
            verbs(&actions),
            [
                ("create", "pods"),
                ("event", "ReplicationController"),
                ("patch_status", "replicationcontrollers")
            ]
        );
        assert_eq!(
            actions[0].body["metadata"]["ownerReferences"][0]["kind"],
            "ReplicationController"
        );
    }

    #[tokio::test]
    async fn a_gone_or_deleted_owner_is_left_alone() {
        let mut leaving = set(3);
        leaving.metadata.deletion_timestamp =
            serde_json::from_value(json!("2026-11-23T10:00:00Z")).unwrap();
        let c = controller(Fake::default(), vec![leaving], vec![]);
        c.sync("0/default/web").await.unwrap();
        c.sync("0/default/gone").await.unwrap();
        assert_eq!(c.control.take(), []);
    }
}
