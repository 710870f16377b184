//! Real pods (`--runtime process`), each test in a machine of its own
//! (network, mount and PID namespaces made for it): nginx pods answering
//! with their names at their pod IPs from pods and nodes, pods reaching
//! pods on other nodes without NAT, logs streamed and kept across a
//! restart, probes that move a pod in and out of its Service's
//! EndpointSlice or restart it, and nothing left after a `kill -9`.

use std::path::Path;

use serde_json::Value;

use crate::harness::{eventually, have, python_checks, Machine, Server};
use crate::pods::items;

/// A machine and a server with the process runtime inside it; None when
/// the test cannot run here (and is skipped, with a reason).
fn cluster(dir: &Path) -> Option<(Machine, Server)> {
    cluster_with(dir, &[])
}

/// [`cluster`], with more flags for the server.
fn cluster_with(dir: &Path, flags: &[&str]) -> Option<(Machine, Server)> {
    if !have("kubectl") {
        return None;
    }
    let machine = Machine::new()?;
    let mut all = vec!["--runtime", "process"];
    all.extend(flags);
    let server = Server::start_in(Some(&machine), dir, &all);
    Some((machine, server))
}

/// Applies a YAML manifest.
fn apply(server: &Server, dir: &Path, name: &str, yaml: &str) {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    server.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
}

/// A pod's object once `check` holds for it.
fn pod_when(server: &Server, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(60, what, || {
        let output = server.kubectl(&["get", "pod", name, "-o", "json"]);
        let pod: Value = serde_json::from_slice(&output.stdout).ok()?;
        check(&pod).then_some(pod)
    })
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// `wget -qO- URL` from inside the namespace `namespace` of the machine
/// (None: the machine's own),
/// tried for a few seconds: a pod without a readiness probe is ready as
/// its process starts, before it listens, as upstream's.
fn fetch(machine: &Machine, namespace: Option<&str>, url: &str) -> String {
    let place = namespace.unwrap_or("the machine's own namespace");
    let mut last = String::new();
    let tried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(10, &format!("wget {url} in {place}"), || {
            let output = wget_once(machine, namespace, url);
            last = String::from_utf8_lossy(&output.stderr).into_owned();
            output
                .status
                .success()
                .then(|| String::from_utf8(output.stdout).unwrap())
        })
    }));
    tried.unwrap_or_else(|_| panic!("wget {url} in {place}: {last}"))
}

/// One `wget -qO- URL` from inside the namespace `namespace` of the
/// machine (None: the machine's own), bounded to 5 s.
fn wget_once(machine: &Machine, namespace: Option<&str>, url: &str) -> std::process::Output {
    // Debian's busybox wget crashes on -T: timeout bounds it.
    let wget = ["timeout", "5", "busybox", "wget", "-qO-", url];
    let (program, args): (&str, Vec<&str>) = match namespace {
        Some(namespace) => (
            "ip",
            ["netns", "exec", namespace]
                .into_iter()
                .chain(wget)
                .collect(),
        ),
        None => ("timeout", wget[1..].to_vec()),
    };
    machine.command(program, &args).output().unwrap()
}

fn pod_namespace(pod: &Value) -> String {
    format!("skiff-pod-{}", pod["metadata"]["uid"].as_str().unwrap())
}

/// Three nginx pods and an echo pod (also the VM scenario's, `vm.rs`).
pub(crate) const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: echo}
spec:
  containers:
  - name: netexec
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: [netexec, --http-port=8080]
"#;

#[test]
fn nginx_pods_answer_with_their_names_at_their_ips_from_pods_and_nodes_without_nat() {
    let dir = tempfile::tempdir().unwrap();
    let Some((machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "web", WEB);
    let done = server.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(done.contains("successfully rolled out"), "{done}");
    let echo = pod_when(&server, "echo", "the echo pod running", ready);
    let pods = items(&server.json(&["pods", "-l", "app=web"]));
    assert_eq!(pods.len(), 3);
    let echo_ip = echo["status"]["podIP"].as_str().unwrap();
    for pod in &pods {
        let name = pod["metadata"]["name"].as_str().unwrap();
        let ip = pod["status"]["podIP"].as_str().unwrap();
        // From a node, and from another pod.
        assert_eq!(
            fetch(
                &machine,
                Some("skiff-skiff-node-1"),
                &format!("http://{ip}/")
            ),
            name
        );
        assert_eq!(
            fetch(
                &machine,
                Some(&pod_namespace(&echo)),
                &format!("http://{ip}/")
            ),
            name
        );
        // The echo server sees the pod's own IP: no NAT, on any node.
        let seen = fetch(
            &machine,
            Some(&pod_namespace(pod)),
            &format!("http://{echo_ip}:8080/clientip"),
        );
        assert_eq!(seen.split(':').next(), Some(ip), "{name} seen as {seen}");
    }
    let nodes: std::collections::BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str())
        .collect();
    assert!(nodes.len() > 1, "the pods spread over nodes: {nodes:?}");
    // The namespace the server runs in gets no route or address of theirs.
    let here = machine.run_ok("ip", &["addr"]) + &machine.run_ok("ip", &["route"]);
    assert!(
        !here.contains("10.244.") && !here.contains("172.18."),
        "{here}"
    );
    // The pod's own files: hostname, hosts and cluster DNS.
    let hostname = machine.run_ok(
        "ip",
        &[
            "netns",
            "exec",
            &pod_namespace(&echo),
            "cat",
            "/proc/sys/kernel/hostname",
        ],
    );
    assert!(!hostname.is_empty());
    // Deleting the Deployment removes the pods' namespaces.
    server.kubectl_ok(&["delete", "deployment", "web"]);
    eventually(30, "the web pods' namespaces to go", || {
        let left = machine.namespaces();
        (!pods.iter().any(|p| left.contains(&pod_namespace(p)))).then_some(())
    });
}

const COUNTER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  containers:
  - name: count
    image: busybox:1.36
    command: [sh, -c, 'echo "run on $(MY_NODE)"; i=0; while [ $i -lt 4 ]; do echo "line $i"; i=$((i+1)); sleep 0.2; done; exit 3']
    env:
    - {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
"#;

#[test]
fn logs_stream_what_a_container_prints_and_keep_the_previous_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "counter", COUNTER);
    pod_when(&server, "counter", "the counter started", |p| {
        p["status"]["phase"] == "Running"
    });
    // Following ends when the container exits.
    let followed = server.kubectl_ok(&["logs", "-f", "counter"]);
    let lines: Vec<&str> = followed.lines().collect();
    assert!(lines[0].starts_with("run on skiff-node-"), "{followed}");
    assert_eq!(&lines[1..], ["line 0", "line 1", "line 2", "line 3"]);
    let tail = server.kubectl_ok(&["logs", "counter", "--tail=1", "--timestamps"]);
    assert!(tail.ends_with("Z line 3\n"), "{tail}");
    // Exit 3 under restartPolicy Always: back-off, then a second run.
    let restarted = pod_when(&server, "counter", "a restart", |p| {
        p["status"]["containerStatuses"][0]["restartCount"] == 1
    });
    assert_eq!(
        restarted["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        3
    );
    let previous = server.kubectl_ok(&["logs", "counter", "--previous"]);
    assert!(previous.ends_with("line 3\n"), "{previous}");
    let wrong = server.kubectl(&["logs", "counter", "-c", "nope"]);
    assert!(String::from_utf8_lossy(&wrong.stderr)
        .contains("container nope is not valid for pod counter"));
}

#[test]
fn probes_take_a_pod_out_of_its_endpoints_and_restart_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some((machine, server)) = cluster(dir.path()) else {
        return;
    };
    // The readiness probe reads a file in the container's own layer,
    // which `kubectl exec` removes and makes again; the liveness probe asks
    // a port nothing serves.
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: gated, labels: {app: gated}}
spec:
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "touch /tmp/ready && exec sleep 3600"]
    readinessProbe:
      exec: {command: [test, -e, /tmp/ready]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: gated}
spec:
  selector: {app: gated}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: doomed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: nginx
    livenessProbe:
      tcpSocket: {port: 81}
      periodSeconds: 1
      failureThreshold: 2
"#;
    apply(&server, dir.path(), "probes", yaml);
    let ready_addresses = || {
        let slices = server.json(&["endpointslices", "-l", "kubernetes.io/service-name=gated"]);
        items(&slices)
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .count()
    };
    let gated = pod_when(&server, "gated", "the gated pod ready", ready);
    eventually(30, "the pod in its Service's slice", || {
        (ready_addresses() == 1).then_some(())
    });
    // Each node's proxy follows: the pod's endpoint chain while it is
    // ready, the Service refused while it is not.
    let chain = format!(
        "ep-default/gated/tcp/__{}/80",
        gated["status"]["podIP"].as_str().unwrap()
    );
    let in_rules = |present: bool, what: &str| {
        eventually(10, what, || {
            let table = node_table(&machine, "skiff-skiff-node-3", "skiff-proxy");
            (table.contains(&chain) == present).then_some(())
        })
    };
    in_rules(true, "the ready pod in the node's rules");
    server.kubectl_ok(&["exec", "gated", "--", "rm", "/tmp/ready"]);
    pod_when(&server, "gated", "the gated pod not ready", |p| !ready(p));
    eventually(30, "the pod out of the slice", || {
        (ready_addresses() == 0).then_some(())
    });
    in_rules(false, "the unready pod out of the node's rules");
    server.kubectl_ok(&["exec", "gated", "--", "touch", "/tmp/ready"]);
    eventually(30, "the pod back in the slice", || {
        (ready_addresses() == 1).then_some(())
    });
    in_rules(true, "the pod back in the node's rules");

    let restarted = pod_when(&server, "doomed", "a liveness restart", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)
    });
    assert_eq!(restarted["status"]["phase"], "Running");
    let events = server.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=doomed",
    ]);
    assert!(
        events.contains("Liveness probe failed: dial tcp"),
        "{events}"
    );
    assert!(
        events.contains("Container web failed liveness probe, will be restarted"),
        "{events}"
    );
}

#[test]
fn after_a_kill_9_the_next_start_leaves_nothing_of_the_old_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some((machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "web", WEB);
    let echo = pod_when(&server, "echo", "the echo pod running", ready);
    let old = pod_namespace(&echo);
    let processes = |namespace: &str| machine.run_ok("ip", &["netns", "pids", namespace]);
    let old_pids = processes(&old);
    assert!(!old_pids.trim().is_empty());
    // The pod's memory cgroup, where the machine's kernel keeps it.
    let first = old_pids.split_whitespace().next().unwrap();
    let cgroups = machine.run_ok("cat", &[&format!("/proc/{first}/cgroup")]);
    let memory = cgroup_dir(&cgroups, "memory").expect("a memory cgroup");
    let pod_cgroup = memory.parent().unwrap().to_owned();
    assert!(pod_cgroup.exists(), "{}", pod_cgroup.display());
    server.crash();
    // Everything of the old run is still there...
    assert!(machine.namespaces().contains(&old));
    let server = Server::start_in(Some(&machine), dir.path(), &["--runtime", "process"]);
    // ...until the next start removes it and runs the pods again.
    let echo = pod_when(&server, "echo", "the echo pod running again", |p| {
        ready(p) && machine.namespaces().contains(&pod_namespace(p))
    });
    let new_pids = processes(&pod_namespace(&echo));
    for pid in old_pids.split_whitespace() {
        assert!(
            !new_pids.split_whitespace().any(|p| p == pid),
            "old process {pid} lives on"
        );
        assert!(!machine_has(&machine, pid), "old process {pid} is gone");
    }
    let ip = echo["status"]["podIP"].as_str().unwrap();
    let answer = fetch(
        &machine,
        Some("skiff-skiff-node-1"),
        &format!("http://{ip}:8080/hostname"),
    );
    assert_eq!(answer, "echo");
    server.stop();
    assert_eq!(
        machine.namespaces(),
        Vec::<String>::new(),
        "a clean stop removes everything"
    );
    assert!(
        !pod_cgroup.exists(),
        "the old run's cgroup goes: {}",
        pod_cgroup.display()
    );
}

/// Whether process `pid` (as the machine numbers it) exists inside it.
fn machine_has(machine: &Machine, pid: &str) -> bool {
    machine
        .command("test", &["-e", &format!("/proc/{pid}")])
        .status()
        .is_ok_and(|s| s.success())
}

/// `kubectl exec -i` of `tr a-z A-Z` in the shell pod, fed `input`.
fn upper_case(server: &Server, kubectl: &str, input: &[u8]) -> std::process::Output {
    let args = ["exec", "-i", "shell", "--", "sh", "-c", "tr a-z A-Z"];
    fed(server, kubectl, &args, input)
}

/// `kubectl ARGS` with `input` on its standard input.
fn fed(server: &Server, kubectl: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = server
        .command(kubectl, args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

const SHELL: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  containers:
  - name: sh
    image: busybox
    command: [sleep, "3600"]
    env: [{name: GREETING, value: hello}]
"#;

#[test]
fn kubectl_exec_runs_commands_in_the_container_with_stdin_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "shell", SHELL);
    pod_when(&server, "shell", "the shell pod running", ready);
    // The container's environment and hostname, and its exit code.
    let output = server.kubectl(&[
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        "echo $GREETING from $(hostname); exit 7",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello from shell\n"
    );
    assert_eq!(output.status.code(), Some(7));
    // Standard input reaches the command.
    let output = upper_case(&server, "kubectl", b"piped in\n");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "PIPED IN\n");
    assert!(output.status.success());
    let missing = server.kubectl(&["exec", "shell", "--", "no-such-program"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("executable file not found"));
    // What the container writes stays in its own layer, not the node's.
    let marker = format!("/etc/skiff-e2e-{}", std::process::id());
    server.kubectl_ok(&[
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        &format!("echo mine > {marker}"),
    ]);
    assert_eq!(
        server.kubectl_ok(&["exec", "shell", "--", "cat", &marker]),
        "mine\n"
    );
    assert!(!Path::new(&marker).exists(), "{marker} reached the node");
    // kubectl cp, both ways (exec and tar).
    let local = dir.path().join("note.txt");
    std::fs::write(&local, "copied in\n").unwrap();
    server.kubectl_ok(&["cp", local.to_str().unwrap(), "shell:/tmp/note.txt"]);
    assert_eq!(
        server.kubectl_ok(&["exec", "shell", "--", "cat", "/tmp/note.txt"]),
        "copied in\n"
    );
    let back = dir.path().join("back.txt");
    server.kubectl_ok(&["cp", "shell:/tmp/note.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "copied in\n");
}

const VOLUMES: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello, colour: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: mounted, labels: {app: mounted}}
spec:
  initContainers:
  - name: prepare
    image: busybox
    command: [sh, -c, "echo prepared > /scratch/init"]
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
  containers:
  - name: reader
    image: busybox
    command: [sleep, "3600"]
    volumeMounts:
    - {name: config, mountPath: /etc/app}
    - {name: secret, mountPath: /var/secret}
    - {name: info, mountPath: /etc/podinfo}
    - {name: scratch, mountPath: /scratch}
    - {name: fast, mountPath: /fast}
  - name: writer
    image: busybox
    command: [sh, -c, "echo shared > /scratch/note && exec sleep 3600"]
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
  volumes:
  - {name: config, configMap: {name: settings}}
  - {name: secret, secret: {secretName: db, defaultMode: 0400}}
  - {name: info, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}
  - {name: scratch, emptyDir: {}}
  - {name: fast, emptyDir: {medium: Memory}}
"#;

#[test]
fn volumes_are_mounted_where_the_pod_asks_after_init_containers_and_a_config_map_update_reaches_the_file(
) {
    let dir = tempfile::tempdir().unwrap();
    let Some((_machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "volumes", VOLUMES);
    pod_when(&server, "mounted", "the pod running", ready);
    let read =
        |path: &str| server.kubectl_ok(&["exec", "mounted", "-c", "reader", "--", "cat", path]);
    assert_eq!(read("/etc/app/greeting"), "hello");
    assert_eq!(read("/var/secret/password"), "s3cret");
    assert_eq!(read("/etc/podinfo/labels"), "app=\"mounted\"");
    let mode = server.kubectl_ok(&[
        "exec",
        "mounted",
        "-c",
        "reader",
        "--",
        "stat",
        "-L",
        "-c",
        "%a",
        "/var/secret/password",
    ]);
    assert_eq!(mode.trim(), "400");
    // An init container ran to its end first; one emptyDir, two containers.
    assert_eq!(read("/scratch/init"), "prepared\n");
    eventually(20, "the writer's note", || {
        (read("/scratch/note") == "shared\n").then_some(())
    });
    let fs = server.kubectl_ok(&[
        "exec", "mounted", "-c", "reader", "--", "stat", "-f", "-c", "%T", "/fast",
    ]);
    assert_eq!(fs.trim(), "tmpfs");
    // Read-only, as upstream mounts them.
    let write = server.kubectl(&[
        "exec",
        "mounted",
        "-c",
        "reader",
        "--",
        "sh",
        "-c",
        "echo x > /etc/app/new",
    ]);
    assert!(!write.status.success());
    server.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"greeting":"bonjour"}}"#,
    ]);
    eventually(30, "the update in the file", || {
        (read("/etc/app/greeting") == "bonjour").then_some(())
    });
}

#[test]
fn the_python_clients_exec_and_port_forward_reach_a_real_pod() {
    if !crate::harness::have_python_client() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "web", WEB);
    pod_when(&server, "echo", "the echo pod running", ready);
    let inside = |program: &str, args: &[&str]| machine.command(program, args);
    let checks = ["exec", "stdin", "portforward"];
    python_checks(inside, &server, "python_streams.py", &checks);
}

#[test]
fn post_start_and_pre_stop_hooks_run_in_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_machine, server)) = cluster(dir.path()) else {
        return;
    };
    let hooks = dir.path().join("hooks");
    let yaml = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, "echo started > /tmp/post"]}}}}
      preStop: {{exec: {{command: [sh, -c, "echo stopping > /hooks/pre-stop"]}}}}
    volumeMounts: [{{name: hooks, mountPath: /hooks}}]
  volumes:
  - {{name: hooks, hostPath: {{path: "{}", type: DirectoryOrCreate}}}}
"#,
        hooks.display()
    );
    apply(&server, dir.path(), "hooked", &yaml);
    pod_when(&server, "hooked", "the pod running", ready);
    assert_eq!(
        server.kubectl_ok(&["exec", "hooked", "--", "cat", "/tmp/post"]),
        "started\n"
    );
    server.kubectl_ok(&["delete", "pod", "hooked", "--wait=true"]);
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-stop")).unwrap(),
        "stopping\n"
    );
}

#[test]
fn a_host_port_reaches_the_pod_through_its_nodes_address() {
    if !have("nft") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((machine, server)) = cluster(dir.path()) else {
        return;
    };
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: ported}
spec:
  nodeName: skiff-node-2
  containers:
  - name: web
    image: nginx
    ports: [{containerPort: 80, hostPort: 8080}]
"#;
    apply(&server, dir.path(), "ported", yaml);
    let pod = pod_when(&server, "ported", "the pod running", ready);
    let node_ip = pod["status"]["hostIP"].as_str().unwrap();
    // From another node, and from the node itself.
    assert_eq!(
        fetch(
            &machine,
            Some("skiff-skiff-node-1"),
            &format!("http://{node_ip}:8080/")
        ),
        "ported"
    );
    assert_eq!(
        fetch(
            &machine,
            Some("skiff-skiff-node-2"),
            &format!("http://{node_ip}:8080/")
        ),
        "ported"
    );
    server.kubectl_ok(&["delete", "pod", "ported", "--wait=true"]);
    let rules = node_table(&machine, "skiff-skiff-node-2", "skiff-hostports");
    assert!(!rules.contains("dport 8080"), "{rules}");
}

#[test]
fn kubectl_top_shows_what_real_pods_use() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "web", WEB);
    pod_when(&server, "echo", "the echo pod running", ready);
    let top = server.kubectl_ok(&["top", "pod", "echo"]);
    // NAME CPU(cores) MEMORY(bytes): the built-in server's resident memory.
    let row: Vec<&str> = top
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row.first(), Some(&"echo"), "{top}");
    let memory: u64 = row[2].trim_end_matches("Mi").parse().unwrap();
    assert!(memory >= 1, "{top}");
    let nodes = server.kubectl_ok(&["top", "nodes"]);
    assert_eq!(nodes.lines().count(), 4, "{nodes}");
}

#[test]
fn kubectl_port_forward_reaches_a_pods_port() {
    let dir = tempfile::tempdir().unwrap();
    let Some((machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "web", WEB);
    pod_when(&server, "echo", "the echo pod running", ready);
    let mut forward = server
        .command("kubectl", &["port-forward", "pod/echo", "18080:8080"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // From the machine's own loopback, where kubectl listens.
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        fetch(&machine, None, "http://127.0.0.1:18080/hostname")
    }));
    let _ = forward.kill();
    let output = forward.wait_with_output().unwrap();
    let answer = answer.unwrap_or_else(|_| {
        panic!(
            "kubectl port-forward: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(answer, "echo");
}

/// kubectl of version 1.`minor`, beside the one on PATH; None (skipped,
/// with a reason, except in CI) when it is not installed.
fn kubectl_of(minor: u32) -> Option<String> {
    let on_path = std::fs::canonicalize(which("kubectl")?).ok()?;
    let path = on_path.with_file_name(format!("kubectl.1.{minor}"));
    if path.exists() {
        return Some(path.display().to_string());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "kubectl 1.{minor} is required in CI"
    );
    eprintln!("SKIPPED: kubectl 1.{minor} is not installed beside kubectl");
    None
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

#[test]
fn kubectl_before_1_30_execs_over_spdy() {
    let dir = tempfile::tempdir().unwrap();
    let Some(old) = kubectl_of(29) else {
        return;
    };
    let Some((_machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "shell", SHELL);
    pod_when(&server, "shell", "the shell pod running", ready);
    let output = server
        .command(
            &old,
            &["exec", "shell", "--", "sh", "-c", "echo $GREETING; exit 4"],
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(4));
    let output = upper_case(&server, &old, b"over spdy\n");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "OVER SPDY\n");
}

#[test]
fn host_routes_let_the_servers_own_namespace_reach_pods() {
    let dir = tempfile::tempdir().unwrap();
    if !have("kubectl") {
        return;
    }
    let Some(machine) = Machine::new() else {
        return;
    };
    let server = Server::start_in(
        Some(&machine),
        dir.path(),
        &["--runtime", "process", "--host-routes"],
    );
    apply(&server, dir.path(), "web", WEB);
    let echo = pod_when(&server, "echo", "the echo pod running", ready);
    let ip = echo["status"]["podIP"].as_str().unwrap();
    // Straight from the namespace the server runs in (the machine's own).
    let answer = fetch(&machine, None, &format!("http://{ip}:8080/clientip"));
    assert!(answer.starts_with("172.18.255.254:"), "{answer}");
    server.stop();
    let routes = machine.run_ok("ip", &["route"]);
    assert!(
        !routes.contains("10.244."),
        "the routes go with the server: {routes}"
    );
}

#[test]
fn a_memory_limit_exceeded_is_oom_killed_and_a_cpu_limit_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_machine, server)) = cluster(dir.path()) else {
        return;
    };
    // The shell holds 64 MB in a variable, over its 16 Mi limit.
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: hungry}
spec:
  restartPolicy: Never
  containers:
  - name: eat
    image: busybox
    command: [sh, -c, 'x=$(head -c 67108864 /dev/zero | tr "\000" a); echo survived']
    resources:
      limits: {memory: 16Mi, cpu: 250m}
---
apiVersion: v1
kind: Pod
metadata: {name: limited}
spec:
  containers:
  - name: idle
    image: busybox
    command: [sleep, "3600"]
    resources:
      requests: {cpu: 100m}
      limits: {memory: 32Mi, cpu: 500m}
"#;
    apply(&server, dir.path(), "limits", yaml);
    let hungry = pod_when(&server, "hungry", "the hungry pod ended", |p| {
        p["status"]["phase"] == "Failed"
    });
    let terminated = &hungry["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["reason"], "OOMKilled", "{hungry:#}");
    assert_eq!(terminated["exitCode"], 137, "{hungry:#}");

    // The limits are where the kernel reads them, seen from inside.
    pod_when(&server, "limited", "the limited pod running", ready);
    let cgroup = server.kubectl_ok(&["exec", "limited", "--", "cat", "/proc/self/cgroup"]);
    let read = |controller: &str, file: &str| {
        let dir = cgroup_dir(&cgroup, controller)
            .unwrap_or_else(|| panic!("no {controller} cgroup in {cgroup}"));
        assert!(dir.ends_with("idle"), "{cgroup}");
        std::fs::read_to_string(dir.join(file)).unwrap()
    };
    match cgroup_v2() {
        true => {
            assert_eq!(read("memory", "memory.max").trim(), "33554432");
            assert_eq!(read("cpu", "cpu.max").trim(), "50000 100000");
        }
        false => {
            assert_eq!(read("memory", "memory.limit_in_bytes").trim(), "33554432");
            assert_eq!(read("cpu", "cpu.cfs_quota_us").trim(), "50000");
            assert_eq!(read("cpu", "cpu.shares").trim(), "102");
        }
    }
    server.stop();
}

/// Whether the host's cgroups are one v2 hierarchy (cgroupfs is the
/// host's: a machine sees the same).
fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The directory of the cgroup of `controller` that a `/proc/PID/cgroup`
/// text names (v2's one line has no controllers).
fn cgroup_dir(text: &str, controller: &str) -> Option<std::path::PathBuf> {
    let path = text.lines().find_map(|l| {
        let (_, rest) = l.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        (controllers.is_empty() || controllers.split(',').any(|c| c == controller))
            .then(|| path.to_owned())
    })?;
    let mount = match cgroup_v2() {
        true => "/sys/fs/cgroup".to_owned(),
        false => format!("/sys/fs/cgroup/{controller}"),
    };
    Some(std::path::PathBuf::from(format!("{mount}{path}")))
}

/// The Services over them (also the VM scenario's, `vm.rs`).
pub(crate) const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 8000, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-local}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 8081, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere}
spec:
  type: ExternalName
  externalName: example.com
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
"#;

/// The nftables table `table` of the node namespace `node`, as nft lists
/// it.
fn node_table(machine: &Machine, node: &str, table: &str) -> String {
    machine.run_ok(
        "ip",
        &["netns", "exec", node, "nft", "list", "table", "ip", table],
    )
}

/// The names that answer `url` from `namespace` in `tries` requests.
fn answers(machine: &Machine, namespace: &str, url: &str, tries: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..tries)
        .map(|_| fetch(machine, Some(namespace), url))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The Services of the user's documents over 3 real pods, with each
/// node's proxy in `mode`; a non-loopback load-balancer pool, so that a
/// pod reaches the LB IP through its node. Answers the cluster, to be
/// dropped server first, directory last.
fn services_carry_traffic(mode: &str) -> Option<(tempfile::TempDir, Machine, Server)> {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--proxy-mode",
        mode,
        "--load-balancer-pool",
        "172.18.200.0/24",
    ];
    let (machine, server) = cluster_with(dir.path(), &flags)?;
    apply(&server, dir.path(), "web", WEB);
    apply(&server, dir.path(), "services", SERVICES);
    server.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let echo = pod_when(&server, "echo", "the echo pod running", ready);
    let client = pod_namespace(&echo);
    let cluster_ip = |name: &str| {
        server.json(&["service", name])["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut names: Vec<String> = items(&server.json(&["pods", "-l", "app=web"]))
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    // Every pod answers the ClusterIP from a pod within 30 requests.
    let web = format!("http://{}/", cluster_ip("web"));
    assert_eq!(answers(&machine, &client, &web, 30), names);
    // ClientIP affinity: one pod answers them all.
    let sticky = format!("http://{}:8000/", cluster_ip("sticky"));
    assert_eq!(answers(&machine, &client, &sticky, 10).len(), 1);
    // The node port answers on every node's address, from another node.
    for node in items(&server.json(&["nodes"])) {
        let address = node["status"]["addresses"][0]["address"].as_str().unwrap();
        let name = fetch(
            &machine,
            Some("skiff-skiff-node-1"),
            &format!("http://{address}:30080/"),
        );
        assert!(names.contains(&name), "{name} answered {address}:30080");
    }
    // The load balancer's address answers from a pod.
    let lb = eventually(30, "the LoadBalancer's address", || {
        server.json(&["service", "web-lb"])["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_owned)
    });
    let lb = format!("http://{lb}:8080/");
    let name = eventually(10, "the LB IP answering", || {
        let name = fetch(&machine, Some(&client), &lb);
        names.contains(&name).then_some(name)
    });
    assert!(names.contains(&name));
    // With `externalTrafficPolicy: Local`, each node's health-check port
    // counts the endpoints it holds itself: the 3 pods, over the nodes.
    let health = server.json(&["service", "web-local"])["spec"]["healthCheckNodePort"]
        .as_u64()
        .expect("a health-check node port");
    let mut local = 0;
    for node in items(&server.json(&["nodes"])) {
        let address = node["status"]["addresses"][0]["address"].as_str().unwrap();
        let url = format!("http://{address}:{health}/healthz");
        let output = wget_once(&machine, Some("skiff-skiff-node-1"), &url);
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.success() {
            true => {
                let body: Value = serde_json::from_slice(&output.stdout).unwrap();
                assert_eq!(body["service"]["name"], "web-local", "{body}");
                local += body["localEndpoints"].as_u64().unwrap();
            }
            false => assert!(stderr.contains("503"), "{url}: {stderr}"),
        }
    }
    assert_eq!(local, 3, "every pod counted on its node");
    // A Service without endpoints refuses at once.
    let nobody = format!("http://{}/", cluster_ip("nobody"));
    let refused = wget_once(&machine, Some(&client), &nobody);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused"), "{stderr}");
    // Scaled to five, all five answer; scaled to one, only that pod.
    server.kubectl_ok(&["scale", "deployment/web", "--replicas", "5"]);
    eventually(60, "five pods behind the ClusterIP", || {
        (answers(&machine, &client, &web, 30).len() == 5).then_some(())
    });
    server.kubectl_ok(&["scale", "deployment/web", "--replicas", "1"]);
    eventually(30, "one pod behind the ClusterIP", || {
        (answers(&machine, &client, &web, 10).len() == 1).then_some(())
    });
    Some((dir, machine, server))
}

#[test]
fn services_carry_traffic_through_each_nodes_nftables_proxy() {
    let Some((_dir, machine, server)) = services_carry_traffic("nftables") else {
        return;
    };
    // The rules sit in each node's namespace, in the proxy's own table,
    // as `skiff proxy rules` reads them back from the kernel.
    let rules = node_table(&machine, "skiff-skiff-node-2", "skiff-proxy");
    assert!(rules.contains("svc-default/web/tcp/"), "{rules}");
    let listed = server.skiff_ok(&["proxy", "rules", "--node", "skiff-node-2"]);
    assert!(listed.contains("svc-default/web/tcp/"), "{listed}");
    // The Service's timeline: its slices' writes, then each node's proxy
    // programming the change.
    let trace = eventually(10, "the proxies' syncs in the trace", || {
        let trace = server.skiff_ok(&["trace", "svc/web", "--explain"]);
        (trace.contains("skiff-proxy") && trace.contains("event RulesSynced")).then_some(trace)
    });
    assert!(trace.contains("endpointslice-controller"), "{trace}");
    assert!(trace.contains("-> 1 endpoint"), "{trace}");
}

#[test]
fn services_carry_traffic_through_each_nodes_userspace_proxy() {
    let Some((_dir, _machine, server)) = services_carry_traffic("userspace") else {
        return;
    };
    // The redirects and the sockets the proxy listens on, from the kernel.
    let listed = server.skiff_ok(&["proxy", "rules"]);
    assert!(
        listed.contains("# node skiff-node-2: userspace mode"),
        "{listed}"
    );
    assert!(listed.contains("userspace-ports"), "{listed}");
    assert!(listed.contains("172.18.0.4:30080"), "{listed}");
}

const ASKER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: asker}
spec:
  containers:
  - name: shell
    image: debian
    command: [sleep, "3600"]
"#;

#[test]
fn pods_reach_cluster_dns_and_the_apiserver_through_their_services() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_machine, server)) = cluster(dir.path()) else {
        return;
    };
    apply(&server, dir.path(), "web", WEB);
    apply(&server, dir.path(), "services", SERVICES);
    apply(&server, dir.path(), "asker", ASKER);
    pod_when(&server, "asker", "the asking pod running", ready);
    let web = server.json(&["service", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = |args: &[&str]| {
        let mut line = vec!["exec", "asker", "--"];
        line.extend(args);
        server.kubectl(&line)
    };
    // The pod's resolv.conf names kube-dns (10.96.0.10), which its node's
    // proxy carries to the server's DNS on the nodes' wire.
    let answer = eventually(30, "kube-dns answering inside the pod", || {
        let out = ask(&["busybox", "nslookup", "web.default.svc.cluster.local"]);
        String::from_utf8_lossy(&out.stdout)
            .contains(&web)
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(answer.contains("10.96.0.10"), "{answer}");
    // kubectl in the pod finds the API as in-cluster clients do: the
    // `kubernetes` Service (10.96.0.1:443) and the pod's service account.
    let out = ask(&["kubectl", "get", "service", "web", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "service/web\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An echo server (busybox `nc`, one `cat` per connection) behind a
/// ClusterIP: a connection that stays open while a test does something
/// else.
const ECHO: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: cat}
spec:
  replicas: 2
  selector: {matchLabels: {app: cat}}
  template:
    metadata: {labels: {app: cat}}
    spec:
      containers:
      - name: cat
        image: busybox
        command: [nc, -ll, -p, "9000", -e, cat]
---
apiVersion: v1
kind: Service
metadata: {name: cat}
spec:
  selector: {app: cat}
  ports: [{port: 9000}]
"#;

/// `skiff proxy run` for `node`, inside the server's machine, with its
/// log lines on a channel.
struct Proxy {
    child: std::process::Child,
    log: std::sync::mpsc::Receiver<String>,
}

impl Proxy {
    fn start(server: &Server, node: &str, mode: &str) -> Proxy {
        use std::io::BufRead;
        let mut child = server
            .command(
                env!("CARGO_BIN_EXE_skiff"),
                &["proxy", "run", "--node", node, "--proxy-mode", mode],
            )
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start skiff proxy run");
        let (lines, log) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines.send(line);
            }
        });
        Proxy { child, log }
    }

    /// Waits for the proxy's first sync, the whole table's.
    fn synced(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains("proxy rules synced") && line.contains("full=true") => {
                    return
                }
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no full sync within 30 s: {}", seen.join("\n"));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A table's listing with its top-level blocks (chains, sets, maps) and
/// each set's elements sorted: a table rebuilt afresh lists the same
/// rules, though chains made as pods came up and elements in a hash come
/// in another order.
fn normalized(listing: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    // The table's own lines (its head and closing brace) are left out.
    for line in listing.lines().filter(|l| l.starts_with('\t')) {
        let top = line.starts_with('\t') && !line.starts_with("\t\t") && line.trim() != "}";
        match blocks.last_mut() {
            Some(block) if !top => {
                block.push_str(line.trim());
                block.push('\n');
            }
            _ => blocks.push(format!("{}\n", line.trim())),
        }
    }
    for block in &mut blocks {
        if let Some((head, rest)) = block.split_once("elements = {") {
            let (elements, tail) = rest.split_once('}').unwrap_or((rest, ""));
            let mut elements: Vec<&str> = elements.split(',').map(str::trim).collect();
            elements.sort();
            *block = format!("{head}elements = {{ {} }}{tail}", elements.join(", "));
        }
    }
    blocks.sort();
    blocks
}

/// A node's proxy killed and started again (`skiff proxy run`, as
/// kube-proxy restarts on a node): the new one rebuilds the same table,
/// and a connection made through a ClusterIP before goes on carrying data
/// after, on its conntrack entry.
#[test]
fn a_proxy_restart_rebuilds_the_same_rules_and_keeps_an_established_connection() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--proxy-mode", "none", "--nodes", "2"];
    let Some((machine, server)) = cluster_with(dir.path(), &flags) else {
        return;
    };
    let nodes = ["skiff-node-1", "skiff-node-2"];
    eventually(30, "both nodes registered", || {
        (items(&server.json(&["nodes"])).len() == 2).then_some(())
    });
    let proxies: Vec<Proxy> = nodes
        .iter()
        .map(|node| Proxy::start(&server, node, "nftables"))
        .collect();
    proxies.iter().for_each(Proxy::synced);
    apply(&server, dir.path(), "web", WEB);
    apply(&server, dir.path(), "echo", ECHO);
    server.kubectl_ok(&["rollout", "status", "deployment/cat", "--timeout=60s"]);
    let client = pod_namespace(&pod_when(&server, "echo", "the echo pod running", ready));
    let ip = server.json(&["service", "cat"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let table = |node: &str| {
        normalized(&node_table(
            &machine,
            &format!("skiff-{node}"),
            "skiff-proxy",
        ))
    };
    let mut connection = eventually(30, "a connection through the ClusterIP", || {
        let mut nc = machine
            .command(
                "ip",
                &[
                    "netns", "exec", &client, "timeout", "120", "busybox", "nc", &ip, "9000",
                ],
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut answers = std::io::BufReader::new(nc.stdout.take().unwrap()).lines();
        let echoed = writeln!(nc.stdin.as_mut().unwrap(), "before").is_ok()
            && matches!(answers.next(), Some(Ok(line)) if line == "before");
        if echoed {
            return Some((nc, answers));
        }
        let _ = nc.kill();
        let _ = nc.wait();
        None
    });
    let before: Vec<Vec<String>> = nodes.iter().map(|n| table(n)).collect();
    assert!(
        before[0].iter().any(|b| b.contains("svc-default/cat/tcp/")),
        "{before:?}"
    );
    // Killed: the kernel keeps the table; a new proxy rebuilds it afresh.
    drop(proxies);
    let proxies: Vec<Proxy> = nodes
        .iter()
        .map(|node| Proxy::start(&server, node, "nftables"))
        .collect();
    proxies.iter().for_each(Proxy::synced);
    let after: Vec<Vec<String>> = nodes.iter().map(|n| table(n)).collect();
    assert_eq!(before, after, "the rebuilt tables");
    let (nc, answers) = &mut connection;
    writeln!(nc.stdin.as_mut().unwrap(), "after").unwrap();
    assert_eq!(
        answers.next().unwrap().unwrap(),
        "after",
        "the same connection, after the restart"
    );
    let _ = nc.kill();
    let _ = nc.wait();
}
