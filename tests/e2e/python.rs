//! The official Python `kubernetes` client, unchanged, against Skiff.

use std::process::Command;

use crate::harness::{have_python_client, Server};

#[test]
fn the_python_client_lists_creates_patches_watches_and_gets_409_and_410() {
    if !have_python_client() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A short history, so that a resourceVersion is compacted quickly.
    let server = Server::start_with(dir.path(), &["--history-max-events", "10"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/e2e/python_client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&server.kubeconfig)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for check in [
        "list", "create", "patch", "conflict", "watch", "gone", "delete",
    ] {
        assert!(stdout.contains(&format!("{check}: ok")), "{stdout}");
    }
}
