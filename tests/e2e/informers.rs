//! One informer set per process: `skiff server` watches each kind once,
//! however many of its components read that kind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::{have, Server};

/// The kinds the server's components read: the scheduler, controllers,
/// DNS and node agents (full objects), and the garbage collector's
/// metadata of the kinds no other component reads.
const WATCHED: &[&str] = &[
    "configmaps",
    "daemonsets",
    "deployments",
    "endpoints",
    "endpointslices",
    "namespaces",
    "nodes",
    "pods",
    "replicasets",
    "replicationcontrollers",
    "secrets",
    "serviceaccounts",
    "services",
    "statefulsets",
];

/// The open watches /metrics reports: the total, and by resource.
fn open_watches(server: &Server) -> (i64, BTreeMap<String, i64>) {
    let text = server.kubectl_ok(&["get", "--raw", "/metrics"]);
    let mut total = 0;
    let mut by_resource = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_longrunning_requests{verb=\"watch\"") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect("a sample");
        let value: i64 = value.parse().expect("a count");
        match labels.strip_prefix(",resource=\"") {
            Some(resource) => {
                by_resource.insert(resource.trim_end_matches('"').to_owned(), value);
            }
            None => total = value,
        }
    }
    (total, by_resource)
}

#[test]
fn the_server_holds_one_watch_per_kind() {
    if !have("kubectl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let expected: BTreeMap<String, i64> = WATCHED.iter().map(|r| (r.to_string(), 1)).collect();
    // Until the components have all started (or the deadline), then what
    // is open then.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (total, by_resource) = loop {
        let watches = open_watches(&server);
        if watches.1 == expected || Instant::now() > deadline {
            break watches;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(by_resource, expected, "open watches by resource");
    assert_eq!(total, WATCHED.len() as i64, "open watches in all");
}
