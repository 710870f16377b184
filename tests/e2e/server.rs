//! `skiff server` itself: readiness, credentials, restarts, shutdown.

use crate::harness::{have, Server};

#[test]
fn kubectl_sees_the_default_namespaces() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    assert!(server.url.starts_with("https://127.0.0.1:"));
    let names = server.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            names.contains(&format!("namespace/{ns}")),
            "{ns} missing: {names}"
        );
    }
}

#[test]
fn a_wrong_token_is_unauthorized() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let output = server.kubectl(&["--token", "wrong", "get", "namespaces"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("You must be logged in to the server"),
        "{stderr}"
    );
    // Health and version answer anonymously.
    let version = server.kubectl_ok(&["--token", "wrong", "get", "--raw", "/version"]);
    assert!(
        version.contains("\"major\": \"1\"") || version.contains("\"major\":\"1\""),
        "{version}"
    );
}

#[test]
fn objects_and_credentials_survive_a_restart() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let manifest = dir.path().join("ns.json");
    std::fs::write(
        &manifest,
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"keep-me"}}"#,
    )
    .unwrap();
    server.kubectl_ok(&[
        "create",
        "--raw",
        "/api/v1/namespaces",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    let status = server.stop();
    assert!(status.success(), "skiff server exited with {status}");

    let server = Server::start(dir.path());
    let names = server.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    assert!(names.contains("namespace/keep-me"), "{names}");
    assert!(server.data_dir.join("pki/ca.crt").exists());
}
