//! The pod creation flow with the real kubectl: Deployments become
//! ReplicaSets become pods, the scheduler binds them, the simulated
//! kubelets run them; rollouts, rollbacks, scaling, deletion, scheduling
//! failures, cordoned nodes, crash loops and namespace deletion.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::harness::{eventually, have, Server};

/// The items of a list.
pub(crate) fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The pods not being deleted.
fn live_pods(server: &Server, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["pods"];
    all.extend(args);
    items(&server.json(&all))
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn running(pods: &[Value]) -> usize {
    pods.iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count()
}

#[test]
fn a_deployment_runs_spread_rolls_out_back_and_scales() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=10",
    ]);
    let done = server.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(done.contains("successfully rolled out"), "{done}");

    // Ten running pods, spread over the three nodes, with IPs from their CIDRs.
    let pods = live_pods(&server, &["-l", "app=web"]);
    assert_eq!(running(&pods), 10);
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &pods {
        let node = pod["spec"]["nodeName"].as_str().unwrap().to_owned();
        let index = node.rsplit('-').next().unwrap();
        let ip = pod["status"]["podIP"].as_str().unwrap();
        assert!(
            ip.starts_with(&format!("10.244.{index}.")),
            "{ip} on {node}"
        );
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(
        per_node.values().all(|n| (3..=4).contains(n)),
        "{per_node:?}"
    );

    // An image change, watched the whole time: never fewer available than
    // 10 - maxUnavailable (25% of 10, rounded down: 2).
    let mut watch = server
        .command(
            "kubectl",
            &[
                "get",
                "deployment",
                "web",
                "-w",
                "-o",
                "jsonpath={.status.availableReplicas}{\"\\n\"}",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let seen = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.trim().parse::<i64>().ok())
            .collect::<Vec<_>>()
    });
    server.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    server.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    watch.kill().unwrap();
    watch.wait().unwrap();
    let available = seen.join().unwrap();
    assert!(!available.is_empty());
    assert!(
        available.iter().all(|n| *n >= 8),
        "availability during the rollout: {available:?}"
    );
    let sets = items(&server.json(&["replicasets", "-l", "app=web"]));
    assert_eq!(sets.len(), 2);
    let replicas: Vec<i64> = sets
        .iter()
        .map(|s| s["spec"]["replicas"].as_i64().unwrap())
        .collect();
    assert!(
        replicas.contains(&10) && replicas.contains(&0),
        "{replicas:?}"
    );

    // Back to the old template, on the old ReplicaSet.
    server.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    server.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let deployment = server.json(&["deployment", "web"]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        items(&server.json(&["replicasets", "-l", "app=web"])).len(),
        2
    );

    server.kubectl_ok(&["scale", "deployment/web", "--replicas=3"]);
    eventually(30, "3 pods", || {
        let pods = live_pods(&server, &["-l", "app=web"]);
        (pods.len() == 3 && running(&pods) == 3).then_some(())
    });

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    server.kubectl_ok(&["delete", "deployment", "web"]);
    eventually(30, "no ReplicaSets and no pods", || {
        let sets = items(&server.json(&["replicasets"]));
        let pods = items(&server.json(&["pods"]));
        (sets.is_empty() && pods.is_empty()).then_some(())
    });
}

#[test]
fn unschedulable_cordoned_and_crashing_pods() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let manifest = dir.path().join("pods.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1
kind: Pod
metadata: {name: huge}
spec:
  containers:
  - name: c
    image: nginx
    resources: {requests: {cpu: \"1000\"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: crash}
spec:
  replicas: 2
  selector: {matchLabels: {app: crash}}
  template:
    metadata:
      labels: {app: crash}
      annotations: {sim.skiff.dev/exit-after: 500ms, sim.skiff.dev/exit-code: \"1\"}
    spec:
      containers: [{name: c, image: busybox}]
",
    )
    .unwrap();
    server.kubectl_ok(&["cordon", "skiff-node-1"]);
    server.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=6",
    ]);

    let message = eventually(20, "the FailedScheduling event", || {
        items(&server.json(&[
            "events",
            "--field-selector",
            "involvedObject.name=huge,reason=FailedScheduling",
        ]))
        .first()
        .map(|e| e["message"].as_str().unwrap().to_owned())
    });
    assert_eq!(
        message,
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    let huge = server.json(&["pod", "huge"]);
    assert_eq!(huge["status"]["phase"], "Pending");
    let scheduled = huge["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .cloned()
        .unwrap();
    assert_eq!(
        (scheduled["status"].as_str(), scheduled["reason"].as_str()),
        (Some("False"), Some("Unschedulable"))
    );

    server.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    for pod in live_pods(&server, &["-l", "app=web"]) {
        assert_ne!(
            pod["spec"]["nodeName"], "skiff-node-1",
            "a cordoned node took a pod"
        );
    }

    // The crashing containers back off; the ReplicaSet keeps two pods.
    eventually(30, "CrashLoopBackOff", || {
        live_pods(&server, &["-l", "app=crash"])
            .iter()
            .any(|p| {
                p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                    == "CrashLoopBackOff"
            })
            .then_some(())
    });
    let table = server.kubectl_ok(&["get", "pods", "-l", "app=crash"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    assert_eq!(live_pods(&server, &["-l", "app=crash"]).len(), 2);
    let backoff = items(&server.json(&["events", "--field-selector", "reason=BackOff"]));
    assert!(!backoff.is_empty());
}

#[test]
fn deleting_a_namespace_empties_it_and_refuses_new_content() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.kubectl_ok(&["create", "namespace", "shop"]);
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "shop",
        "--image=nginx",
        "--replicas=3",
    ]);
    server.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--from-literal=a=b",
    ]);
    server.kubectl_ok(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        "shop",
        "--timeout=60s",
    ]);
    server.kubectl_ok(&["delete", "namespace", "shop", "--wait=false"]);
    let refused = server.kubectl(&["create", "configmap", "late", "-n", "shop"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    if !refused.status.success() {
        assert!(
            stderr.contains("because it is being terminated")
                || stderr.contains(r#"namespaces "shop" not found"#),
            "{stderr}"
        );
    }
    // The namespace controller looks again after upstream's estimate of
    // what remains (half the pods' 30 s grace period, plus a second), so
    // the namespace may take a while to go.
    eventually(60, "the namespace to go", || {
        let gone = server.kubectl(&["get", "namespace", "shop"]);
        (!gone.status.success()).then_some(())
    });
    assert!(items(&server.json(&["pods", "-n", "shop"])).is_empty());
}

#[test]
fn a_namespace_held_by_a_finalizer_says_so_in_its_conditions() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.kubectl_ok(&["create", "namespace", "held"]);
    let manifest = dir.path().join("held.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1
kind: ConfigMap
metadata: {name: kept, namespace: held, finalizers: [example.com/hold]}
",
    )
    .unwrap();
    server.kubectl_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    server.kubectl_ok(&["delete", "namespace", "held", "--wait=false"]);
    let message = |kind: &str| {
        let namespace = server.json(&["namespace", "held"]);
        let conditions = namespace["status"]["conditions"].as_array()?.clone();
        let condition = conditions.iter().find(|c| c["type"] == kind)?;
        (condition["status"] == "True").then(|| condition["message"].as_str().unwrap().to_owned())
    };
    let finalizers = eventually(30, "the finalizers to be named", || {
        message("NamespaceFinalizersRemaining")
    });
    assert_eq!(
        finalizers,
        "Some finalizers are remaining: example.com/hold in 1 resource instances"
    );
    assert_eq!(
        message("NamespaceContentRemaining").as_deref(),
        Some("Some resources are remaining: configmaps. has 1 resource instances")
    );
    server.kubectl_ok(&[
        "patch",
        "configmap",
        "kept",
        "-n",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    eventually(60, "the namespace to go", || {
        let gone = server.kubectl(&["get", "namespace", "held"]);
        (!gone.status.success()).then_some(())
    });
}

#[test]
fn trace_shows_a_pods_way_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let manifest = dir.path().join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx}]}
",
    )
    .unwrap();
    server.skiff_ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let pod = eventually(30, "a running pod", || {
        let pods = live_pods(&server, &["-l", "app=web"]);
        let ready = pods.iter().find(|p| p["status"]["phase"] == "Running")?;
        Some(ready["metadata"]["name"].as_str()?.to_owned())
    });
    let trace = server.skiff_ok(&["trace", &format!("pod/{pod}"), "--explain"]);
    let steps: Vec<(String, String)> = trace
        .lines()
        .skip(1)
        .filter(|l| l.starts_with('+'))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words[1].to_owned(), words[2..words.len() - 1].join(" "))
        })
        .collect();
    let position = |component: &str, action: &str| {
        steps
            .iter()
            .position(|(c, a)| c == component && a.starts_with(action))
            .unwrap_or_else(|| panic!("no {component} {action} in\n{trace}"))
    };
    let created = position("replicaset-controller", "create");
    let bound = position("default-scheduler", "create binding");
    let reported = position("kubelet", "patch status");
    assert!(created < bound && bound < reported, "{trace}");
    assert!(trace.contains("The scheduler chose a node"), "{trace}");
    // The Deployment's trace covers its ReplicaSet and pod too.
    let whole = server.skiff_ok(&["trace", "deploy/web"]);
    for step in ["skiff-cli", "deployment-controller", &format!("pod/{pod}")] {
        assert!(whole.contains(step), "{step} missing from\n{whole}");
    }
}

#[test]
fn node_agents_run_in_a_separate_process() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--nodes", "0"]);
    let mut agent = server
        .command(
            env!("CARGO_BIN_EXE_skiff"),
            &["agent", "--nodes", "2", "--first-node", "5"],
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let names = eventually(20, "two nodes from the agent", || {
        let nodes = items(&server.json(&["nodes"]));
        let names: Vec<String> = nodes
            .iter()
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        (names.len() == 2).then_some(names)
    });
    assert_eq!(names, ["skiff-node-5", "skiff-node-6"]);
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    server.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let pods = live_pods(&server, &["-l", "app=web"]);
    assert!(pods.iter().all(|p| p["status"]["podIP"]
        .as_str()
        .unwrap()
        .starts_with("10.244.")));
    // The apiserver reaches the agent's kubelet server for logs too.
    let name = pods[0]["metadata"]["name"].as_str().unwrap();
    let log = server.kubectl_ok(&["logs", name]);
    assert!(
        log.contains("started on simulated node skiff-node-"),
        "{log}"
    );
    agent.kill().unwrap();
    agent.wait().unwrap();
}

#[test]
fn endpoints_follow_the_ready_pods_of_a_service() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
        "--port=9376",
    ]);
    server.kubectl_ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=9376",
    ]);
    let addresses = eventually(30, "three ready addresses", || {
        let endpoints = server.json(&["endpoints", "web"]);
        let ready = endpoints["subsets"][0]["addresses"].as_array()?.len();
        (ready == 3).then_some(endpoints["subsets"][0].clone())
    });
    assert_eq!(addresses["ports"][0]["port"], 9376);
    server.kubectl_ok(&["scale", "deployment/web", "--replicas=1"]);
    eventually(30, "one address", || {
        let endpoints = server.json(&["endpoints", "web"]);
        (endpoints["subsets"][0]["addresses"].as_array()?.len() == 1).then_some(())
    });
    server.kubectl_ok(&["delete", "service", "web"]);
    eventually(30, "the Endpoints to go", || {
        (!server
            .kubectl(&["get", "endpoints", "web"])
            .status
            .success())
        .then_some(())
    });
}

#[test]
fn exec_into_a_simulated_pod_says_no_process_runs() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.kubectl_ok(&["run", "sim", "--image=nginx"]);
    eventually(30, "the pod running", || {
        (server.json(&["pod", "sim"])["status"]["phase"] == "Running").then_some(())
    });
    let output = server.kubectl(&["exec", "sim", "--", "true"]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains(
            "the simulated runtime runs no processes; start the server with --runtime process"
        ),
        "{said}"
    );
}

#[test]
fn kubectl_top_shows_what_simulated_pods_request() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.kubectl_ok(&["run", "sized", "--image=nginx", "--overrides",
        r#"{"spec":{"containers":[{"name":"sized","image":"nginx","resources":{"requests":{"cpu":"250m","memory":"64Mi"}}}]}}"#]);
    let top = eventually(30, "the pod's metrics", || {
        let output = server.kubectl(&["top", "pod", "sized", "--no-headers"]);
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    });
    let row: Vec<&str> = top.split_whitespace().collect();
    assert_eq!(row, ["sized", "250m", "64Mi"], "{top}");
}
