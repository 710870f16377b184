//! End-to-end tests: a real `skiff server` on a free loopback port in a
//! temporary directory, driven by real clients (kubectl, the Python
//! client, kube-rs) and by skiff's own client verbs.

mod cli;
mod dns;
mod endpointslices;
mod harness;
mod informers;
mod kube_rs;
mod kubectl;
mod pods;
mod python;
mod realpods;
mod server;
mod serviceaccounts;
mod services;
mod services_cli;
mod vm;
