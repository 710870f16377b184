//! The controllers: each reads the process's shared informers, queues
//! the keys of what changed, and syncs one key at a time against the cache,
//! with the decision itself a pure, tested function.

pub mod control;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod gc;
pub mod loadbalancer;
pub mod membership;
pub mod namespace;
pub mod namespace_defaults;
pub mod replicaset;
pub mod selector;
pub mod workqueue;

use skiff_runtime::Informers;

/// What the controllers are configured with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The addresses LoadBalancer Services are given.
    pub load_balancer_pool: skiff_api::services::IpRange,
    /// The cluster's CA (PEM), published in every namespace.
    pub root_ca: String,
}

/// Starts every controller, each reading from the process's shared
/// `informers` and writing with the client `client(its name)`. The garbage
/// collector comes last: it reads every kind's metadata, through the full
/// informers the others asked for where there is one.
pub fn start(client: &dyn Fn(&str) -> kube::Client, informers: &Informers, options: &Options) {
    tokio::spawn(replicaset::run(
        client("replicaset-controller"),
        informers,
        4,
    ));
    tokio::spawn(deployment::run(
        client("deployment-controller"),
        informers,
        2,
    ));
    // The two endpoints controllers share their view of Services and pods.
    let members = membership::ServicePods::start(informers);
    tokio::spawn(endpoints::run(
        client("endpoint-controller"),
        members.clone(),
    ));
    tokio::spawn(endpointslice::run(
        client("endpointslice-controller"),
        informers,
        members,
        4,
    ));
    tokio::spawn(loadbalancer::run(
        client("service-lb-controller"),
        informers,
        options.load_balancer_pool,
    ));
    tokio::spawn(namespace::run(client("namespace-controller"), informers));
    tokio::spawn(namespace_defaults::service_accounts(
        client("serviceaccount-controller"),
        informers,
    ));
    tokio::spawn(namespace_defaults::root_ca_publisher(
        client("root-ca-cert-publisher"),
        informers,
        &options.root_ca,
    ));
    tokio::spawn(gc::run(client("generic-garbage-collector"), informers));
}
