//! The official Python `kubernetes` client, unchanged, against Skiff.

use std::process::Command;

use crate::harness::{have_python_client, python_checks, Server};

#[test]
fn the_python_client_lists_creates_patches_watches_and_gets_409_and_410() {
    if !have_python_client() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A short history, so that a resourceVersion is compacted quickly.
    let server = Server::start_with(dir.path(), &["--history-max-events", "10"]);
    server.settled();
    let here = |program: &str, args: &[&str]| {
        let mut command = Command::new(program);
        command.args(args);
        command
    };
    let checks = [
        "list", "create", "patch", "conflict", "watch", "gone", "delete",
    ];
    python_checks(here, &server, "python_client.py", &checks);
}
