//! The scheduler: binds each unscheduled pod (of `schedulerName`
//! `default-scheduler`) to the node that fits it best, as kube-scheduler
//! does. It reads nodes and pods from the process's shared informers into
//! its cache of placements, keeps a
//! queue of pods to place, runs the Filter plugins over a sample of the
//! nodes (upstream's adaptive percentage), scores the feasible ones,
//! assumes the winner in its cache and posts the binding while it goes on
//! with the next pod. A pod that fits nowhere gets the FailedScheduling
//! event and the PodScheduled=False condition, and is retried when nodes or
//! pods change; a failed binding is retried with back-off.

pub mod plugins;
pub mod queue;
pub mod resources;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_runtime::events::{reference, Recorder, Type};
use skiff_runtime::{Event, Informer};
use tokio::sync::{mpsc, Semaphore};

use crate::plugins::{filter, score, unschedulable_message, NodeInfo, PodInfo};
use crate::queue::Queue;

/// The scheduler's name, which pods ask for in `spec.schedulerName`.
pub const NAME: &str = "default-scheduler";
/// Bindings in flight at once.
const BINDINGS: usize = 64;

/// What the scheduler hears.
enum Change {
    Node(Event<Node>),
    Pod(Event<Pod>),
    /// A binding finished: the pod's uid, and the error if it failed.
    Bound(String, Option<kube::Error>),
}

/// The nodes and what is placed on them.
#[derive(Default)]
struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Placed pods (bound, or assumed while binding): node and view.
    placed: HashMap<String, (String, PodInfo)>,
}

impl Cache {
    fn upsert_node(&mut self, node: &Node) {
        let mut info = NodeInfo::new(node);
        match self.index.get(&info.name) {
            Some(&i) => {
                let old = &self.nodes[i];
                (info.requested, info.ports, info.owners) =
                    (old.requested, old.ports.clone(), old.owners.clone());
                self.nodes[i] = info;
            }
            None => {
                self.index.insert(info.name.clone(), self.nodes.len());
                self.nodes.push(info);
            }
        }
    }

    fn remove_node(&mut self, name: &str) {
        if let Some(i) = self.index.remove(name) {
            self.nodes.swap_remove(i);
            if let Some(moved) = self.nodes.get(i) {
                self.index.insert(moved.name.clone(), i);
            }
        }
    }

    fn place(&mut self, uid: &str, node: &str, pod: PodInfo) {
        if self.placed.get(uid).is_some_and(|(n, _)| n == node) {
            return;
        }
        self.unplace(uid);
        if let Some(&i) = self.index.get(node) {
            self.nodes[i].add(&pod);
        }
        self.placed.insert(uid.to_owned(), (node.to_owned(), pod));
    }

    fn unplace(&mut self, uid: &str) {
        if let Some((node, pod)) = self.placed.remove(uid) {
            if let Some(&i) = self.index.get(&node) {
                self.nodes[i].remove(&pod);
            }
        }
    }
}

/// How many feasible nodes to find before scoring: upstream's adaptive
/// `percentageOfNodesToScore` (50% less 1% per 125 nodes, at least 5%),
/// and at least 100.
pub fn feasible_to_find(nodes: usize) -> usize {
    let percent = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percent / 100).max(100).min(nodes)
}

struct Scheduler {
    client: Client,
    events: Recorder,
    cache: Cache,
    queue: Queue,
    /// Where the next search through the nodes starts.
    next_start: usize,
    changes: mpsc::UnboundedSender<Change>,
    bindings: Arc<Semaphore>,
}

/// Runs the scheduler, reading nodes and pods from the process's shared
/// informers and writing (bindings, events, conditions) through `client`.
pub async fn run(client: Client, nodes: Informer<Node>, pods: Informer<Pod>) {
    let (changes, mut heard) = mpsc::unbounded_channel();
    let forward = changes.clone();
    nodes.on_event(move |e| {
        let _ = forward.send(Change::Node(e));
    });
    let forward = changes.clone();
    pods.on_event(move |e| {
        let _ = forward.send(Change::Pod(e));
    });
    let mut scheduler = Scheduler {
        events: Recorder::new(client.clone(), NAME, None),
        client,
        cache: Cache::default(),
        queue: Queue::default(),
        next_start: 0,
        changes,
        bindings: Arc::new(Semaphore::new(BINDINGS)),
    };
    let (mut nodes_synced, mut pods_synced) = (false, false);
    loop {
        // Take in everything heard, then place one pod, then listen again.
        while let Ok(change) = heard.try_recv() {
            scheduler.hear(change, &mut nodes_synced, &mut pods_synced);
        }
        if nodes_synced && pods_synced {
            if let Some(pod) = scheduler.queue.pop(Instant::now()) {
                scheduler.schedule(pod);
                continue;
            }
        }
        let wake = scheduler
            .queue
            .next_due(Instant::now())
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            change = heard.recv() => match change {
                Some(change) => scheduler.hear(change, &mut nodes_synced, &mut pods_synced),
                None => return,
            },
            _ = tokio::time::sleep(wake) => {}
        }
    }
}

fn is_bound(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn is_finished(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

fn wants_us(pod: &Pod) -> bool {
    let name = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref());
    name.is_none_or(|n| n == NAME) && pod.metadata.deletion_timestamp.is_none()
}

impl Scheduler {
    fn hear(&mut self, change: Change, nodes_synced: &mut bool, pods_synced: &mut bool) {
        match change {
            Change::Node(event) => match event {
                Event::Added(node) | Event::Updated { new: node, .. } => {
                    self.cache.upsert_node(&node);
                    self.queue.retry_unschedulable(Instant::now());
                }
                Event::Deleted(node) => self.cache.remove_node(&node.name_any()),
                Event::Synced => *nodes_synced = true,
            },
            Change::Pod(event) => match event {
                Event::Added(pod) | Event::Updated { new: pod, .. } => self.pod_changed(pod),
                Event::Deleted(pod) => {
                    let uid = pod.uid().unwrap_or_default();
                    self.cache.unplace(&uid);
                    self.queue.remove(&uid);
                    self.queue.retry_unschedulable(Instant::now());
                }
                Event::Synced => *pods_synced = true,
            },
            Change::Bound(uid, None) => self.queue.bound(&uid),
            Change::Bound(uid, Some(error)) => {
                // Forget the assumption; unless the pod is gone or bound
                // elsewhere already, try again after a back-off.
                self.cache.unplace(&uid);
                let settled =
                    matches!(&error, kube::Error::Api(s) if s.code == 404 || s.code == 409);
                self.queue.binding_failed(&uid, settled, Instant::now());
            }
        }
    }

    fn pod_changed(&mut self, pod: Arc<Pod>) {
        let uid = pod.uid().unwrap_or_default();
        match is_bound(&pod) {
            Some(_) if is_finished(&pod) => {
                self.cache.unplace(&uid);
                self.queue.retry_unschedulable(Instant::now());
            }
            Some(node) => {
                let node = node.to_owned();
                self.cache.place(&uid, &node, PodInfo::new(&pod));
                self.queue.remove(&uid);
            }
            None if wants_us(&pod) => self.queue.add(uid, pod),
            None => self.queue.remove(&uid),
        }
    }

    /// Places one pod: filters, scores, assumes, and binds in the background.
    fn schedule(&mut self, pod: Arc<Pod>) {
        let info = PodInfo::new(&pod);
        let total = self.cache.nodes.len();
        let wanted = feasible_to_find(total);
        let mut feasible = Vec::new();
        let mut reasons = Vec::new();
        let mut looked = 0;
        while looked < total && feasible.len() < wanted {
            let i = (self.next_start + looked) % total;
            looked += 1;
            match filter(&info, &self.cache.nodes[i]) {
                Ok(()) => feasible.push(i),
                Err(reason) => reasons.push(reason),
            }
        }
        if total > 0 {
            self.next_start = (self.next_start + looked) % total;
        }
        let most_of_owner = info.owner.as_ref().map_or(0, |owner| {
            feasible
                .iter()
                .map(|&i| self.cache.nodes[i].owners.get(owner).copied().unwrap_or(0))
                .max()
                .unwrap_or(0)
        });
        let best = feasible
            .iter()
            .copied()
            .max_by_key(|&i| score(&info, &self.cache.nodes[i], most_of_owner));
        let Some(best) = best else {
            let message = if total == 0 {
                "no nodes available to schedule pods".to_owned()
            } else {
                unschedulable_message(total, &reasons)
            };
            self.unschedulable(pod, message);
            return;
        };
        let node = self.cache.nodes[best].name.clone();
        let uid = pod.uid().unwrap_or_default();
        self.cache.place(&uid, &node, info);
        self.queue.binding(&uid);
        self.bind(pod, node);
    }

    fn bind(&self, pod: Arc<Pod>, node: String) {
        let (client, events, changes) = (
            self.client.clone(),
            self.events.clone(),
            self.changes.clone(),
        );
        let permits = self.bindings.clone();
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let namespace = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": namespace, "uid": pod.uid()},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let api: Api<Pod> = Api::namespaced(client, &namespace);
            let result = api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await;
            let uid = pod.uid().unwrap_or_default();
            match result {
                Ok(_) => {
                    let message = format!("Successfully assigned {namespace}/{name} to {node}");
                    events.record(reference(pod.as_ref()), Type::Normal, "Scheduled", message);
                    let _ = changes.send(Change::Bound(uid, None));
                }
                Err(error) => {
                    let _ = changes.send(Change::Bound(uid, Some(error)));
                }
            }
        });
    }

    /// Reports a pod that fits nowhere (once per distinct reason) and parks
    /// it until the cluster changes.
    fn unschedulable(&mut self, pod: Arc<Pod>, message: String) {
        let uid = pod.uid().unwrap_or_default();
        if !self.queue.unschedulable(&uid, &message, Instant::now()) {
            return;
        }
        self.events.record(
            reference(pod.as_ref()),
            Type::Warning,
            "FailedScheduling",
            message.clone(),
        );
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let name = pod.name_any();
        let condition = json!({"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": skiff_runtime::now(),
        }]}});
        tokio::spawn(async move {
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(condition))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_of_nodes_to_search_follows_upstream() {
        assert_eq!(feasible_to_find(3), 3);
        assert_eq!(feasible_to_find(150), 100);
        assert_eq!(feasible_to_find(1000), 420);
        assert_eq!(feasible_to_find(5000), 500);
        assert_eq!(feasible_to_find(100_000), 5000);
    }
}
