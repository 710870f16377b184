//! The simulated runtime: no process runs; how a pod behaves (start and
//! ready delays, exits, how long it takes to stop) comes from its
//! annotations ([`crate::lifecycle::Behaviour`]), as kwok's stages.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use skiff_runtime::events::{reference, Recorder, Type};

use crate::lifecycle::Behaviour;
use crate::node::SimNode;
use crate::runtime::{
    Change, Containers, Exit, Refused, Runtime, ServiceVariables, Session, NO_PROCESSES,
};

/// The simulated runtime; a pod whose annotations do not parse gets a
/// warning event and the defaults.
pub struct Sim {
    /// Where the warnings go.
    pub events: Recorder,
}

/// A behaviour's pod, as it runs.
struct Simulated {
    behaviour: Behaviour,
    /// When it became ready, if it has yet to.
    ready_at: Option<tokio::time::Instant>,
    started: tokio::time::Instant,
}

fn behaviour(pod: &Pod) -> Behaviour {
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    Behaviour::of(&annotations)
        .unwrap_or_else(|_| Behaviour::of(&Default::default()).expect("the defaults"))
}

#[async_trait::async_trait]
impl Containers for Simulated {
    fn ready(&self) -> bool {
        self.behaviour.ready && self.ready_at.is_none()
    }

    async fn next(&mut self) -> Change {
        let exit_at = self
            .behaviour
            .exit
            .map(|(after, code)| (self.started + after, code));
        if let Some(ready_at) = self.ready_at {
            if exit_at.is_none_or(|(at, _)| at > ready_at) {
                tokio::time::sleep_until(ready_at).await;
                self.ready_at = None;
                return Change::Ready(true);
            }
        }
        match exit_at {
            Some((at, code)) => {
                tokio::time::sleep_until(at).await;
                Change::Exited(Exit::code(code))
            }
            None => std::future::pending().await,
        }
    }
}

#[async_trait::async_trait]
impl Runtime for Sim {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn pods_outlive_the_agent(&self) -> bool {
        true
    }

    async fn prepare(&self, _: &[SimNode]) -> Result<(), String> {
        Ok(())
    }

    async fn sandbox(&self, _: &Pod, _: &SimNode, _: &str) -> Result<(), String> {
        Ok(())
    }

    async fn start(
        &self,
        pod: &Pod,
        _: &SimNode,
        _: &str,
        _: &ServiceVariables,
        restarts: i32,
    ) -> Result<Box<dyn Containers>, Refused> {
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        if let Err(e) = Behaviour::of(&annotations) {
            let message = format!("{e}; using the defaults");
            self.events
                .record(reference(pod), Type::Warning, "InvalidSimulation", message);
        }
        let behaviour = behaviour(pod);
        if restarts == 0 {
            tokio::time::sleep(behaviour.start_delay).await;
        }
        let started = tokio::time::Instant::now();
        let ready_at = (behaviour.ready && !behaviour.ready_delay.is_zero())
            .then(|| started + behaviour.ready_delay);
        Ok(Box::new(Simulated {
            behaviour,
            ready_at,
            started,
        }))
    }

    async fn stop(&self, pod: &Pod, grace: Duration) {
        tokio::time::sleep(behaviour(pod).terminate_delay.min(grace)).await;
    }

    async fn exec(&self, _: &Pod, _: &str, _: Vec<String>, _: bool) -> Result<Session, String> {
        Err(NO_PROCESSES.into())
    }

    async fn attach(&self, _: &Pod, _: &str, _: bool) -> Result<Session, String> {
        Err(NO_PROCESSES.into())
    }

    /// A simulated container uses what it requests (1m of CPU and 4 MiB
    /// when it requests nothing): documented, steady figures.
    fn usage(&self, pods: &[std::sync::Arc<Pod>]) -> Vec<crate::runtime::PodUsage> {
        use skiff_api::specs::quantity::Quantity;
        let milli = |q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
                     default: i128| {
            q.and_then(|q| Quantity::parse(&q.0).ok())
                .map_or(default, |q| q.milli_value())
        };
        pods.iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .map(|pod| {
                let containers = pod.spec.iter().flat_map(|s| &s.containers).map(|c| {
                    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
                    let cpu = milli(requests.and_then(|r| r.get("cpu")), 1);
                    let memory =
                        milli(requests.and_then(|r| r.get("memory")), (4i128 << 20) * 1000) / 1000;
                    (
                        c.name.clone(),
                        (cpu.max(0) as u64) * 1_000_000,
                        memory.max(0) as u64,
                    )
                });
                crate::runtime::PodUsage {
                    namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    containers: containers.collect(),
                }
            })
            .collect()
    }

    fn network(&self, _: &Pod) -> Option<PathBuf> {
        None
    }

    fn running(&self, _: &str, _: &str) -> bool {
        false
    }

    fn log(&self, _: &str, _: &str, _: bool) -> Option<PathBuf> {
        None
    }
}
