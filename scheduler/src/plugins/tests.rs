use serde_json::json;

use super::*;

fn node(name: &str, extra: serde_json::Value) -> NodeInfo {
    let mut object = json!({
        "metadata": {"name": name, "labels": {"zone": "a", "gen": "5"}},
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "3"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    });
    merge(&mut object, extra);
    NodeInfo::new(&serde_json::from_value(object).unwrap())
}

fn pod(extra: serde_json::Value) -> PodInfo {
    let mut object = json!({
        "metadata": {"name": "p", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true}]},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]},
    });
    merge(&mut object, extra);
    PodInfo::new(&serde_json::from_value(object).unwrap())
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

#[test]
fn resources_fit_counts_what_is_placed() {
    let mut n = node("n1", json!({}));
    let p = pod(json!({}));
    assert_eq!(filter(&p, &n), Ok(()));
    for _ in 0..3 {
        n.add(&pod(json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}})));
    }
    assert_eq!(filter(&p, &n).unwrap_err(), "Too many pods");
    let big = pod(
        json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1000"}}}]}}),
    );
    assert_eq!(
        node_resources_fit(&big, &node("n2", json!({}))).unwrap_err(),
        "Insufficient cpu"
    );
    let hungry = pod(
        json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": "9Gi"}}}]}}),
    );
    assert_eq!(
        node_resources_fit(&hungry, &node("n2", json!({}))).unwrap_err(),
        "Insufficient memory"
    );
}

#[test]
fn cordoned_unready_and_tainted_nodes() {
    let p = pod(json!({}));
    let cordoned = node("n", json!({"spec": {"unschedulable": true}}));
    assert_eq!(
        filter(&p, &cordoned).unwrap_err(),
        "node(s) were unschedulable"
    );
    let tolerant = pod(
        json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
    );
    assert_eq!(node_unschedulable(&tolerant, &cordoned), Ok(()));
    let unready = node(
        "n",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    assert_eq!(filter(&p, &unready).unwrap_err(), "node(s) were not ready");
    let tainted = node(
        "n",
        json!({"spec": {"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}, {"key": "soft", "effect": "PreferNoSchedule"}]}}),
    );
    assert_eq!(
        filter(&p, &tainted).unwrap_err(),
        "node(s) had untolerated taint {gpu: yes}"
    );
    let tolerating = pod(
        json!({"spec": {"tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes"}]}}),
    );
    assert_eq!(filter(&tolerating, &tainted), Ok(()));
    let wrong_value = pod(json!({"spec": {"tolerations": [{"key": "gpu", "value": "no"}]}}));
    assert!(taint_toleration(&wrong_value, &tainted).is_err());
    let everything = pod(json!({"spec": {"tolerations": [{"operator": "Exists"}]}}));
    assert_eq!(taint_toleration(&everything, &tainted), Ok(()));
}

#[test]
fn selectors_and_affinity_operators() {
    let n = node("n", json!({}));
    let miss = "node(s) didn't match Pod's node affinity/selector";
    assert_eq!(
        node_affinity(&pod(json!({"spec": {"nodeSelector": {"zone": "a"}}})), &n),
        Ok(())
    );
    assert_eq!(
        node_affinity(&pod(json!({"spec": {"nodeSelector": {"zone": "b"}}})), &n).unwrap_err(),
        miss
    );
    let affinity = |op: &str, values: serde_json::Value| {
        pod(
            json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": if op.ends_with("Exist") || op == "Exists" { "zone" } else { "gen" }, "operator": op, "values": values}]}]}}}}}),
        )
    };
    for (op, values, fits) in [
        ("In", json!(["5", "6"]), true),
        ("In", json!(["6"]), false),
        ("NotIn", json!(["6"]), true),
        ("NotIn", json!(["5"]), false),
        ("Exists", json!(null), true),
        ("DoesNotExist", json!(null), false),
        ("Gt", json!(["4"]), true),
        ("Gt", json!(["5"]), false),
        ("Lt", json!(["6"]), true),
        ("Lt", json!(["5"]), false),
    ] {
        assert_eq!(
            node_affinity(&affinity(op, values.clone()), &n).is_ok(),
            fits,
            "{op} {values}"
        );
    }
}

#[test]
fn host_ports_and_node_names() {
    let mut n = node("n1", json!({}));
    let web = pod(
        json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
    );
    assert_eq!(node_ports(&web, &n), Ok(()));
    n.add(&web);
    assert_eq!(
        node_ports(&web, &n).unwrap_err(),
        "node(s) didn't have free ports for the requested pod ports"
    );
    n.remove(&web);
    assert_eq!(node_ports(&web, &n), Ok(()));
    let pinned = pod(json!({"spec": {"nodeName": "n2"}}));
    assert!(node_name(&pinned, &n).is_err());
}

#[test]
fn scores_prefer_free_nodes_and_spread_owners() {
    let p = pod(json!({}));
    let empty = node("a", json!({}));
    let mut busy = node("b", json!({}));
    busy.add(&pod(json!({})));
    assert!(score(&p, &empty, 1) > score(&p, &busy, 1));
    // Same free resources, but the busy one already runs a pod of this owner.
    let mut other = node("c", json!({}));
    other.add(&pod(json!({"metadata": {"ownerReferences": []}})));
    assert!(score(&p, &other, 1) > score(&p, &busy, 1));
}

#[test]
fn the_summary_reads_like_upstreams() {
    let reasons = [
        "Insufficient cpu",
        "node(s) had untolerated taint {gpu: yes}",
        "Insufficient cpu",
    ]
    .map(String::from);
    assert_eq!(
        unschedulable_message(3, &reasons),
        "0/3 nodes are available: 1 node(s) had untolerated taint {gpu: yes}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}
