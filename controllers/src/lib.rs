//! The controllers: each lists and watches through the apiserver, queues
//! the keys of what changed, and syncs one key at a time against its cache,
//! with the decision itself a pure, tested function.

pub mod deployment;
pub mod gc;
pub mod namespace;
pub mod replicaset;
pub mod selector;
pub mod workqueue;

/// Starts every controller.
pub fn start(client: kube::Client) {
    tokio::spawn(replicaset::run(client.clone(), 4));
    tokio::spawn(deployment::run(client.clone(), 2));
    tokio::spawn(gc::run(client.clone()));
    tokio::spawn(namespace::run(client));
}
