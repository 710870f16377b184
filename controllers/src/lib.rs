//! The controllers: each lists and watches through the apiserver, queues
//! the keys of what changed, and syncs one key at a time against its cache,
//! with the decision itself a pure, tested function.

pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod gc;
pub mod loadbalancer;
pub mod membership;
pub mod namespace;
pub mod replicaset;
pub mod selector;
pub mod workqueue;

/// What the controllers are configured with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The addresses LoadBalancer Services are given.
    pub load_balancer_pool: skiff_api::services::IpRange,
}

/// Starts every controller, each with the client `client(its name)`.
pub fn start(client: &dyn Fn(&str) -> kube::Client, options: &Options) {
    tokio::spawn(replicaset::run(client("replicaset-controller"), 4));
    tokio::spawn(deployment::run(client("deployment-controller"), 2));
    tokio::spawn(gc::run(client("generic-garbage-collector")));
    // The two endpoints controllers share their caches of Services and pods.
    let members = membership::ServicePods::start(client("endpoint-controller"));
    tokio::spawn(endpoints::run(
        client("endpoint-controller"),
        members.clone(),
    ));
    tokio::spawn(endpointslice::run(
        client("endpointslice-controller"),
        members,
        4,
    ));
    tokio::spawn(namespace::run(client("namespace-controller")));
    tokio::spawn(loadbalancer::run(
        client("service-lb-controller"),
        options.load_balancer_pool,
    ));
}
