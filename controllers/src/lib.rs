//! The controllers: each lists and watches through the apiserver, queues
//! the keys of what changed, and syncs one key at a time against its cache,
//! with the decision itself a pure, tested function.

pub mod deployment;
pub mod endpoints;
pub mod gc;
pub mod namespace;
pub mod replicaset;
pub mod selector;
pub mod workqueue;

/// Starts every controller, each with the client `client(its name)`.
pub fn start(client: &dyn Fn(&str) -> kube::Client) {
    tokio::spawn(replicaset::run(client("replicaset-controller"), 4));
    tokio::spawn(deployment::run(client("deployment-controller"), 2));
    tokio::spawn(gc::run(client("generic-garbage-collector")));
    tokio::spawn(endpoints::run(client("endpoint-controller")));
    tokio::spawn(namespace::run(client("namespace-controller")));
}
