//! End-to-end tests: a real `skiff server` on a free loopback port in a
//! temporary directory, driven by real clients (kubectl).

mod harness;
mod kube_rs;
mod kubectl;
mod python;
mod server;
