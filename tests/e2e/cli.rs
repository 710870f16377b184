//! skiff's own client verbs: apply, get (every format, and -w), describe,
//! create, delete, and their one-line errors.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::harness::Server;
use crate::kubectl::MANIFEST;

#[test]
fn apply_get_describe_and_delete_with_the_skiff_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let manifest = dir.path().join("shop.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let path = manifest.to_str().unwrap();

    let created = server.skiff_ok(&["apply", "-f", path]);
    assert_eq!(
        created,
        "namespace/shop created\nconfigmap/web-config created\ndeployment.apps/web created\n"
    );
    let again = server.skiff_ok(&["apply", "-f", path]);
    assert_eq!(
        again,
        "namespace/shop unchanged\nconfigmap/web-config unchanged\ndeployment.apps/web unchanged\n"
    );

    // A field set by someone else survives the next apply; the edit lands.
    server.skiff_ok(&["get", "deploy", "web", "-n", "shop"]);
    server.kubectl_ok(&["label", "deploy/web", "-n", "shop", "owner=ops"]);
    std::fs::write(&manifest, MANIFEST.replace("replicas: 2", "replicas: 5")).unwrap();
    let edited = server.skiff_ok(&["apply", "-f", path]);
    assert!(
        edited.contains("deployment.apps/web configured"),
        "{edited}"
    );
    let labels = server.skiff_ok(&["get", "deployments.apps/web", "-n", "shop", "-o", "json"]);
    let deployment: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 5);
    assert_eq!(deployment["metadata"]["labels"]["owner"], "ops");
    assert_eq!(deployment["metadata"]["generation"], 2);

    // Tables with the server's columns, by short name, kind and plural.
    let table = server.skiff_ok(&["get", "deploy", "-n", "shop"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], "web", "{table}");
    assert!(row[1].ends_with("/5"), "{table}");
    let wide = server.skiff_ok(&["get", "Deployment", "-n", "shop", "-o", "wide"]);
    let wide_header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        wide_header[5..],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        "{wide}"
    );
    let all = server.skiff_ok(&["get", "configmaps", "-A", "-l", "!missing"]);
    // Every namespace holds the cluster's CA, as upstream's do.
    let rows: Vec<Vec<&str>> = all
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..3], ["NAMESPACE", "NAME", "DATA"], "{all}");
    assert!(
        rows.iter().any(|r| r[..3] == ["shop", "web-config", "1"]),
        "{all}"
    );
    assert!(
        rows.iter()
            .any(|r| r[..2] == ["kube-system", "kube-root-ca.crt"]),
        "{all}"
    );
    let names = server.skiff_ok(&["get", "cm,deploy", "-n", "shop", "-o", "name"]);
    assert_eq!(
        names,
        "configmap/kube-root-ca.crt\nconfigmap/web-config\ndeployment.apps/web\n"
    );
    let yaml = server.skiff_ok(&["get", "cm", "web-config", "-n", "shop", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap\n") && yaml.contains("  greeting: hello\n"),
        "{yaml}"
    );
    let list = server.skiff_ok(&["get", "ns", "-o", "yaml"]);
    assert!(
        list.contains("kind: List\n") && list.contains("name: kube-system\n"),
        "{list}"
    );

    let description = server.skiff_ok(&["describe", "deploy/web", "-n", "shop"]);
    assert!(description.starts_with("Name:              web\nNamespace:         shop\n"));
    assert!(description.contains("Labels:            app=web\n                   owner=ops\n"));
    assert!(description.contains("  replicas: 5\n"), "{description}");

    // `get -w` prints the rows of later changes.
    let mut watch = server
        .command(
            env!("CARGO_BIN_EXE_skiff"),
            &["get", "cm", "-n", "shop", "-w"],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let first = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(first.starts_with("NAME "), "{first}");
    let extra = dir.path().join("extra.json");
    std::fs::write(
        &extra,
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra", "namespace": "shop"}}"#,
    )
    .unwrap();
    let made = server.skiff_ok(&["create", "-f", extra.to_str().unwrap()]);
    assert_eq!(made, "configmap/extra created\n");
    let seen = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(seen.starts_with("kube-root-ca.crt "), "{seen}");
    let seen = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(seen.starts_with("web-config "), "{seen}");
    let seen = lines.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(seen.starts_with("extra "), "{seen}");
    watch.kill().unwrap();
    watch.wait().unwrap();

    let gone = server.skiff_ok(&["delete", "cm", "web-config", "-n", "shop"]);
    assert_eq!(gone, "configmap \"web-config\" deleted\n");
    let deleted = server.skiff_ok(&["delete", "-f", path, "--ignore-not-found"]);
    assert!(
        deleted.contains("deployment.apps \"web\" deleted"),
        "{deleted}"
    );
}

#[test]
fn errors_are_one_readable_line_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let cases: [(&[&str], &str); 4] = [
        (
            &["get", "pods", "nope"],
            "Error from server (NotFound): pods \"nope\" not found\n",
        ),
        (
            &["get", "widgets"],
            "error: the server doesn't have a resource type \"widgets\"\n",
        ),
        (
            &["delete", "ns", "default-nope"],
            "Error from server (NotFound): namespaces \"default-nope\" not found\n",
        ),
        (
            &["get", "pods", "-l", "a in (b"],
            "Error from server (BadRequest): unable to parse requirement: expected ',' or ')' in a set of values\n",
        ),
    ];
    for (args, expected) in cases {
        let output = server.skiff(args);
        assert!(!output.status.success(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            expected,
            "{args:?}"
        );
    }
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n",
    )
    .unwrap();
    let output = server.skiff(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("Error from server (Invalid): ConfigMap \"Bad_Name\" is invalid"),
        "{stderr}"
    );

    // Without a kubeconfig the CLI says where it looked.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["get", "pods", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot read the kubeconfig /nonexistent/kubeconfig"),
        "{stderr}"
    );
}

#[test]
fn rollout_scale_logs_and_cordon_with_the_skiff_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let manifest = dir.path().join("web.yaml");
    let deployment = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 3\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: \"{image}\"}}]}}\n"
        )
    };
    std::fs::write(&manifest, deployment("nginx:1")).unwrap();
    let path = manifest.to_str().unwrap();
    server.skiff_ok(&["apply", "-f", path]);
    let done = server.skiff_ok(&["rollout", "status", "deploy/web", "--timeout", "60"]);
    assert!(
        done.ends_with("deployment \"web\" successfully rolled out\n"),
        "{done}"
    );
    std::fs::write(&manifest, deployment("nginx:2")).unwrap();
    server.skiff_ok(&["apply", "-f", path]);
    server.skiff_ok(&["rollout", "status", "deploy/web", "--timeout", "60"]);
    let history = server.skiff_ok(&["rollout", "history", "deploy/web"]);
    assert!(
        history.contains("REVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n"),
        "{history}"
    );
    assert_eq!(
        server.skiff_ok(&["rollout", "undo", "deploy/web"]),
        "deployment.apps/web rolled back\n"
    );
    server.skiff_ok(&["rollout", "status", "deploy/web", "--timeout", "60"]);
    let image = server.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "nginx:1");
    assert_eq!(
        server.skiff_ok(&["rollout", "pause", "deploy/web"]),
        "deployment.apps/web paused\n"
    );
    assert_eq!(
        server.skiff_ok(&["rollout", "resume", "deploy/web"]),
        "deployment.apps/web resumed\n"
    );
    assert_eq!(
        server.skiff_ok(&["rollout", "restart", "deploy/web"]),
        "deployment.apps/web restarted\n"
    );
    server.skiff_ok(&["rollout", "status", "deploy/web", "--timeout", "60"]);

    assert_eq!(
        server.skiff_ok(&["cordon", "skiff-node-1"]),
        "node/skiff-node-1 cordoned\n"
    );
    assert_eq!(
        server.skiff_ok(&["scale", "deploy/web", "--replicas", "6"]),
        "deployment.apps/web scaled\n"
    );
    server.skiff_ok(&["rollout", "status", "deploy/web", "--timeout", "60"]);
    let pods = server.json(&["pods", "-l", "app=web"]);
    assert_eq!(pods["items"].as_array().unwrap().len(), 6);
    let node = server.json(&["node", "skiff-node-1"]);
    assert_eq!(node["spec"]["unschedulable"], true);
    server.skiff_ok(&["uncordon", "skiff-node-1"]);
    let log = server.skiff_ok(&["logs", "deploy/web"]);
    assert!(
        log.contains("skiff: container web (image nginx:1) started on simulated node"),
        "{log}"
    );
    let events = server.skiff_ok(&["get", "events"]);
    assert!(events.contains("ScalingReplicaSet"), "{events}");
}
