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
