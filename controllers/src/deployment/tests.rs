use super::*;

fn set(name: &str, replicas: i32, current: i32, available: i32) -> Set {
    Set {
        name: name.into(),
        replicas,
        current,
        available,
    }
}

const ROLLING: Strategy = Strategy::RollingUpdate {
    surge: 1,
    unavailable: 0,
};

#[test]
fn surge_and_unavailable_resolve_like_upstream() {
    let p = |s: &str| Some(IntOrString::String(s.into()));
    assert_eq!(resolve(p("25%").as_ref(), 10, true, "25%"), 3);
    assert_eq!(resolve(p("25%").as_ref(), 10, false, "25%"), 2);
    assert_eq!(resolve(Some(&IntOrString::Int(4)), 10, true, "25%"), 4);
    assert_eq!(resolve(None, 3, true, "25%"), 1);
    assert_eq!(resolve(None, 3, false, "25%"), 0);
}

#[test]
fn a_new_deployment_creates_its_replica_set_at_full_size() {
    assert_eq!(
        plan(3, ROLLING, false, None, &[]),
        Plan {
            create: Some(3),
            scale: vec![]
        }
    );
}

#[test]
fn a_rolling_update_steps_within_surge_and_unavailability() {
    let old = [set("old", 3, 3, 3)];
    // The new set is created at the surge.
    assert_eq!(plan(3, ROLLING, false, None, &old).create, Some(1));
    // Its pod is not available yet: no old pod may go.
    let new = set("new", 1, 1, 0);
    assert_eq!(plan(3, ROLLING, false, Some(&new), &old), Plan::default());
    // Available: one old pod goes.
    let new = set("new", 1, 1, 1);
    assert_eq!(
        plan(3, ROLLING, false, Some(&new), &old).scale,
        [("old".to_string(), 2)]
    );
    // Room again: the new set grows.
    let old = [set("old", 2, 2, 2)];
    assert_eq!(
        plan(3, ROLLING, false, Some(&new), &old).scale,
        [("new".to_string(), 2)]
    );
    // At the end the old set is empty.
    let new = set("new", 3, 3, 3);
    let old = [set("old", 1, 1, 1)];
    assert_eq!(
        plan(3, ROLLING, false, Some(&new), &old).scale,
        [("old".to_string(), 0)]
    );
    assert_eq!(
        plan(3, ROLLING, false, Some(&new), &[set("old", 0, 0, 0)]),
        Plan::default()
    );
}

#[test]
fn unavailable_old_pods_go_first() {
    let strategy = Strategy::RollingUpdate {
        surge: 0,
        unavailable: 1,
    };
    let new = set("new", 0, 0, 0);
    let old = [set("older", 2, 2, 0), set("old", 2, 2, 2)];
    // 4 pods, 2 unavailable (older): minAvailable 3 means 4-3-0 = 1 may go,
    // taken from the unavailable ones.
    assert_eq!(
        plan(4, strategy, false, Some(&new), &old).scale,
        [("older".to_string(), 1)]
    );
}

#[test]
fn recreate_empties_the_old_sets_first_and_waits() {
    let old = [set("old", 3, 3, 3)];
    assert_eq!(
        plan(3, Strategy::Recreate, false, None, &old).scale,
        [("old".to_string(), 0)]
    );
    let draining = [set("old", 0, 2, 0)];
    assert_eq!(
        plan(3, Strategy::Recreate, false, None, &draining),
        Plan::default()
    );
    let gone = [set("old", 0, 0, 0)];
    assert_eq!(
        plan(3, Strategy::Recreate, false, None, &gone).create,
        Some(3)
    );
}

#[test]
fn paused_deployments_scale_but_do_not_roll() {
    let new = set("new", 3, 3, 3);
    assert_eq!(
        plan(5, ROLLING, true, Some(&new), &[]).scale,
        [("new".to_string(), 5)]
    );
    assert_eq!(
        plan(5, ROLLING, true, None, &[set("old", 3, 3, 3)]),
        Plan::default()
    );
}

#[test]
fn history_keeps_the_newest_empty_sets() {
    let old = [
        (3, set("c", 0, 0, 0)),
        (1, set("a", 0, 0, 0)),
        (2, set("b", 0, 0, 0)),
        (4, set("d", 1, 1, 1)),
    ];
    assert_eq!(beyond_history(&old, 1), ["a", "b"]);
    assert!(beyond_history(&old, 10).is_empty());
}

fn template(image: &str) -> PodTemplateSpec {
    serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}})).unwrap()
}

#[test]
fn hashes_tell_templates_apart_and_ignore_their_own_label() {
    let a = template("nginx:1");
    let hash = template_hash(&a, 0);
    assert_eq!(hash, template_hash(&a, 0));
    assert_ne!(hash, template_hash(&template("nginx:2"), 0));
    assert_ne!(hash, template_hash(&a, 1));
    assert!(hash
        .chars()
        .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    let mut labelled = serde_json::to_value(&a).unwrap();
    labelled["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let rs: ReplicaSet =
        serde_json::from_value(json!({"spec": {"selector": {}, "template": labelled}})).unwrap();
    assert!(same_template(&rs, &a));
    assert!(!same_template(&rs, &template("nginx:2")));
    // Zero values written over protobuf do not make a template new.
    let mut zeros = serde_json::to_value(&a).unwrap();
    zeros["spec"]["hostNetwork"] = json!(false);
    zeros["spec"]["containers"][0]["stdin"] = json!(false);
    assert!(same_template(&rs, &serde_json::from_value(zeros).unwrap()));
}

#[test]
fn status_reports_availability_and_progress() {
    let now: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "generation": 2},
        "spec": {"replicas": 3, "selector": {}, "template": {}, "progressDeadlineSeconds": 60},
    }))
    .unwrap();
    let rs = |replicas: i32, available: i32| -> ReplicaSet {
        serde_json::from_value(json!({"spec": {"selector": {}}, "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}})).unwrap()
    };
    let done = rs(3, 3);
    let s = status(&deployment, Some(("web-1", &done)), &[&done], 0, None, now);
    assert_eq!(
        (
            s["observedGeneration"].as_i64(),
            s["updatedReplicas"].as_i64(),
            s["availableReplicas"].as_i64()
        ),
        (Some(2), Some(3), Some(3))
    );
    assert_eq!(s["conditions"][0]["reason"], "MinimumReplicasAvailable");
    assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
    let halfway = rs(1, 0);
    let s = status(
        &deployment,
        Some(("web-1", &halfway)),
        &[&halfway],
        0,
        Some("ReplicaSet \"web-1\" is progressing.".into()),
        now,
    );
    assert_eq!(s["conditions"][0]["status"], "False");
    assert_eq!(s["conditions"][1]["reason"], "ReplicaSetUpdated");
    assert_eq!(s["unavailableReplicas"], 3);
    // No progress past the deadline.
    let mut stuck = deployment.clone();
    stuck.status =
        serde_json::from_value(json!({"conditions": [s["conditions"][0], s["conditions"][1]]}))
            .unwrap();
    let later = now
        .checked_add(jiff::SignedDuration::from_secs(61))
        .unwrap();
    let s = status(
        &stuck,
        Some(("web-1", &halfway)),
        &[&halfway],
        0,
        None,
        later,
    );
    assert_eq!(s["conditions"][1]["reason"], "ProgressDeadlineExceeded");
    assert_eq!(s["conditions"][1]["status"], "False");
}

#[test]
fn pods_beyond_a_scaled_down_set_do_not_count_as_available() {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "old"},
        "spec": {"replicas": 8, "selector": {}},
        "status": {"replicas": 10, "availableReplicas": 10},
    }))
    .unwrap();
    assert_eq!(Set::of(&rs), set("old", 8, 10, 8));
}

mod sync {
    //! The whole sync of a Deployment, against fixed informers and a fake
    //! that counts what it writes.

    use super::*;
    use crate::control::fake::{merge, status as error, Action, Fake};

    const UID: &str = "deploy-uid";

    fn deployment(image: &str, extra: Value) -> Deployment {
        let mut object = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": UID, "generation": 1},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": template(image),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            },
        });
        merge(&mut object, extra);
        serde_json::from_value(object).unwrap()
    }

    /// The ReplicaSet `web-<hash>` of `image`'s template at `revision`,
    /// with `replicas` pods all available.
    fn owned_set(image: &str, revision: i64, replicas: i32, created: &str) -> ReplicaSet {
        let hash = template_hash(&template(image), 0);
        let mut template = serde_json::to_value(template(image)).unwrap();
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("web-{hash}"), "namespace": "default", "uid": format!("{hash}-uid"),
                "creationTimestamp": created,
                "annotations": {REVISION: revision.to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": UID, "controller": true}],
            },
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", HASH_LABEL: hash}}, "template": template},
            "status": {"replicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas},
        }))
        .unwrap()
    }

    fn controller(fake: Fake, deployment: Deployment, sets: Vec<ReplicaSet>) -> Controller<Fake> {
        Controller::new(
            fake,
            Informer::fixed(vec![deployment]),
            Informer::fixed(sets),
            WorkQueue::default(),
        )
    }

    fn calls(actions: &[Action]) -> Vec<(&str, &str, &str)> {
        actions
            .iter()
            .map(|a| (a.verb, a.resource.as_str(), a.name.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn a_new_deployment_creates_its_replica_set_and_takes_revision_one() {
        let c = controller(Fake::default(), deployment("nginx:1", json!({})), vec![]);
        c.sync("default/web").await.unwrap();
        let actions = c.control.take();
        let name = format!("web-{}", template_hash(&template("nginx:1"), 0));
        assert_eq!(
            calls(&actions),
            [
                ("create", "replicasets", name.as_str()),
                ("event", "Deployment", "ScalingReplicaSet"),
                ("patch", "deployments", "web"),
                ("patch_status", "deployments", "web"),
            ]
        );
        let set = &actions[0].body;
        assert_eq!(set["spec"]["replicas"], 3);
        assert_eq!(set["metadata"]["annotations"][REVISION], "1");
        assert_eq!(set["metadata"]["ownerReferences"][0]["uid"], UID);
        assert_eq!(
            set["spec"]["selector"]["matchLabels"][HASH_LABEL],
            set["spec"]["template"]["metadata"]["labels"][HASH_LABEL]
        );
        assert_eq!(
            actions[1].body,
            format!("Scaled up replica set {name} from 0 to 3")
        );
        assert_eq!(actions[2].body["metadata"]["annotations"][REVISION], "1");
    }

    #[tokio::test]
    async fn a_new_template_surges_one_pod_and_keeps_the_old_ones() {
        let old = owned_set("nginx:1", 1, 3, "2026-11-23T10:00:00Z");
        let c = controller(Fake::default(), deployment("nginx:2", json!({})), vec![old]);
        c.sync("default/web").await.unwrap();
        let actions = c.control.take();
        let creates: Vec<&Action> = actions.iter().filter(|a| a.verb == "create").collect();
        assert_eq!(creates.len(), 1);
        assert_eq!(creates[0].body["spec"]["replicas"], 1, "maxSurge 1");
        assert_eq!(creates[0].body["metadata"]["annotations"][REVISION], "2");
        assert!(
            !actions
                .iter()
                .any(|a| a.verb == "patch" && a.resource == "replicasets"),
            "no old pod goes before a new one is available: {actions:?}"
        );
    }

    #[tokio::test]
    async fn an_available_new_set_lets_an_old_pod_go_and_history_is_trimmed() {
        let oldest = owned_set("nginx:0", 1, 0, "2026-11-23T09:00:00Z");
        let old = owned_set("nginx:1", 2, 3, "2026-11-23T10:00:00Z");
        let new = owned_set("nginx:2", 3, 1, "2026-11-23T11:00:00Z");
        let d = deployment("nginx:2", json!({"spec": {"revisionHistoryLimit": 0}}));
        let c = controller(Fake::default(), d, vec![oldest, old.clone(), new]);
        c.sync("default/web").await.unwrap();
        let actions = c.control.take();
        let old_name = old.metadata.name.unwrap();
        let scale = actions
            .iter()
            .find(|a| a.verb == "patch" && a.name == old_name)
            .unwrap();
        assert_eq!(scale.body["spec"]["replicas"], 2);
        let deleted: Vec<&str> = actions
            .iter()
            .filter(|a| a.verb == "delete")
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(
            deleted,
            [format!("web-{}", template_hash(&template("nginx:0"), 0))]
        );
        let event = actions.iter().find(|a| a.verb == "event").unwrap();
        assert_eq!(
            event.body,
            format!("Scaled down replica set {old_name} from 3 to 2")
        );
    }

    #[tokio::test]
    async fn a_name_taken_by_another_template_counts_a_collision() {
        let name = format!("web-{}", template_hash(&template("nginx:1"), 0));
        let mut squatter = owned_set("nginx:9", 1, 0, "2026-11-23T10:00:00Z");
        squatter.metadata.name = Some(name);
        squatter.metadata.owner_references = None;
        let taken = Fake::failing(|a| (a.verb == "create").then(|| error(409, "AlreadyExists")));
        let c = controller(taken, deployment("nginx:1", json!({})), vec![squatter]);
        assert!(c.sync("default/web").await.is_err());
        let actions = c.control.take();
        assert_eq!(actions[1].verb, "patch_status");
        assert_eq!(actions[1].body, json!({"status": {"collisionCount": 1}}));

        // Taken by its own ReplicaSet, not yet cached: no collision, a retry.
        let taken = Fake::failing(|a| (a.verb == "create").then(|| error(409, "AlreadyExists")));
        let c = controller(taken, deployment("nginx:1", json!({})), vec![]);
        assert!(c.sync("default/web").await.is_err());
        assert_eq!(
            calls(&c.control.take()),
            [(
                "create",
                "replicasets",
                format!("web-{}", template_hash(&template("nginx:1"), 0)).as_str()
            )]
        );
    }
}
