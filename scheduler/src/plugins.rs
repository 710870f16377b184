//! The scheduling plugins, pure: Filters (may this pod run on this node,
//! and if not, upstream's reason) and Scores (how good a fit it is).

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, Taint, Toleration};

use skiff_api::labels::{Requirement, Selector};

use crate::resources::{cpu_millis, memory_bytes, Resources};

/// A node as the scheduler sees it: the node and what is placed on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its taints.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// Its Ready condition is True.
    pub ready: bool,
    /// What it offers.
    pub allocatable: Resources,
    /// What the pods placed on it request.
    pub requested: Resources,
    /// Host ports in use: (protocol, port).
    pub ports: HashSet<(String, i32)>,
    /// Pods placed on it, by controlling owner uid.
    pub owners: HashMap<String, u32>,
}

impl NodeInfo {
    /// The view of a Node with nothing placed on it.
    pub fn new(node: &Node) -> Self {
        let spec = node.spec.clone().unwrap_or_default();
        let status = node.status.clone().unwrap_or_default();
        let allocatable = status.allocatable.or(status.capacity).unwrap_or_default();
        let quantity = |key: &str| allocatable.get(key).map(|q| q.0.as_str()).unwrap_or("0");
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.taints.unwrap_or_default(),
            unschedulable: spec.unschedulable.unwrap_or(false),
            ready: status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            allocatable: Resources {
                cpu: cpu_millis(quantity("cpu")).unwrap_or(0),
                memory: memory_bytes(quantity("memory")).unwrap_or(0),
                pods: quantity("pods").parse().unwrap_or(0),
            },
            ..NodeInfo::default()
        }
    }

    /// Places `pod` here (bound, or assumed while its binding is sent).
    pub fn add(&mut self, pod: &PodInfo) {
        self.requested = self.requested.plus(&pod.requests);
        self.ports.extend(pod.ports.iter().cloned());
        if let Some(owner) = &pod.owner {
            *self.owners.entry(owner.clone()).or_default() += 1;
        }
    }

    /// Takes `pod` off.
    pub fn remove(&mut self, pod: &PodInfo) {
        self.requested = self.requested.minus(&pod.requests);
        for port in &pod.ports {
            self.ports.remove(port);
        }
        if let Some(owner) = &pod.owner {
            if let Some(count) = self.owners.get_mut(owner) {
                *count = count.saturating_sub(1);
            }
        }
    }
}

/// What the scheduler needs of a pod.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    /// The requests of its containers (init containers: their maximum).
    pub requests: Resources,
    /// Host ports it asks for.
    pub ports: Vec<(String, i32)>,
    /// Its controlling owner's uid.
    pub owner: Option<String>,
    /// `spec.nodeName` (set on bound pods).
    pub node_name: Option<String>,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// The required node affinity terms, ORed (`None`: a term with an
    /// operator no node can satisfy).
    pub affinity: Vec<Option<Selector>>,
    /// Its tolerations.
    pub tolerations: Vec<Toleration>,
}

impl PodInfo {
    /// The view of a Pod.
    pub fn new(pod: &Pod) -> Self {
        let spec = pod.spec.clone().unwrap_or_default();
        let request = |c: &k8s_openapi::api::core::v1::Container| {
            let requests = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.clone())
                .unwrap_or_default();
            let get = |k: &str| requests.get(k).map(|q| q.0.clone());
            Resources {
                cpu: get("cpu").and_then(|q| cpu_millis(&q)).unwrap_or(0),
                memory: get("memory").and_then(|q| memory_bytes(&q)).unwrap_or(0),
                pods: 0,
            }
        };
        let mut requests = spec
            .containers
            .iter()
            .map(request)
            .fold(Resources::default(), |a, b| a.plus(&b));
        for init in spec.init_containers.iter().flatten() {
            requests = requests.max(&request(init));
        }
        requests.pods = 1;
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|port| *port > 0)?;
                Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), port))
            })
            .collect();
        let affinity = spec
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|a| a.required_during_scheduling_ignored_during_execution)
            .map(|s| {
                s.node_selector_terms
                    .into_iter()
                    .map(|t| term(t.match_expressions.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        PodInfo {
            requests,
            ports,
            owner: pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
            node_name: spec.node_name.filter(|n| !n.is_empty()),
            node_selector: spec.node_selector.unwrap_or_default(),
            affinity,
            tolerations: spec.tolerations.unwrap_or_default(),
        }
    }
}

/// Runs every Filter; the first failure's reason, as upstream words it.
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), String> {
    node_name(pod, node)?;
    node_unschedulable(pod, node)?;
    node_ready(node)?;
    node_affinity(pod, node)?;
    taint_toleration(pod, node)?;
    node_ports(pod, node)?;
    node_resources_fit(pod, node)
}

/// NodeName: a pod that names a node fits only there.
pub fn node_name(pod: &PodInfo, node: &NodeInfo) -> Result<(), String> {
    match &pod.node_name {
        Some(name) if *name != node.name => {
            Err("node(s) didn't match the requested node name".into())
        }
        _ => Ok(()),
    }
}

const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// NodeUnschedulable: no new pods on a cordoned node, unless tolerated.
pub fn node_unschedulable(pod: &PodInfo, node: &NodeInfo) -> Result<(), String> {
    let taint = Taint {
        key: UNSCHEDULABLE_TAINT.into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    if node.unschedulable && !pod.tolerations.iter().any(|t| tolerates(t, &taint)) {
        return Err("node(s) were unschedulable".into());
    }
    Ok(())
}

/// Only nodes whose kubelet reports Ready take pods.
pub fn node_ready(node: &NodeInfo) -> Result<(), String> {
    if node.ready {
        Ok(())
    } else {
        Err("node(s) were not ready".into())
    }
}

/// NodeAffinity: `nodeSelector` and the required node affinity.
pub fn node_affinity(pod: &PodInfo, node: &NodeInfo) -> Result<(), String> {
    let selected = pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    let affine = pod.affinity.is_empty()
        || pod
            .affinity
            .iter()
            .flatten()
            .any(|term| !term.is_empty() && term.matches_map(&node.labels));
    if selected && affine {
        Ok(())
    } else {
        Err("node(s) didn't match Pod's node affinity/selector".into())
    }
}

/// A node selector term: its requirements, as label requirements.
fn term(expressions: Vec<NodeSelectorRequirement>) -> Option<Selector> {
    let requirements = expressions
        .into_iter()
        .map(|r| Requirement::from_operator(&r.key, &r.operator, r.values.unwrap_or_default()))
        .collect::<Option<Vec<_>>>()?;
    Some(Selector { requirements })
}

/// Whether `toleration` tolerates `taint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect_ok = toleration
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key_ok = match toleration.key.as_deref() {
        None | Some("") => toleration.operator.as_deref() == Some("Exists"),
        Some(key) => key == taint.key,
    };
    let value_ok = match toleration.operator.as_deref() {
        Some("Exists") => true,
        _ => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
    };
    effect_ok && key_ok && value_ok
}

/// TaintToleration: every NoSchedule and NoExecute taint must be tolerated.
pub fn taint_toleration(pod: &PodInfo, node: &NodeInfo) -> Result<(), String> {
    let untolerated = node.taints.iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !pod.tolerations.iter().any(|t| tolerates(t, taint))
    });
    match untolerated {
        Some(taint) => Err(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        )),
        None => Ok(()),
    }
}

/// NodePorts: the host ports a pod asks for must be free.
pub fn node_ports(pod: &PodInfo, node: &NodeInfo) -> Result<(), String> {
    if pod.ports.iter().any(|p| node.ports.contains(p)) {
        Err("node(s) didn't have free ports for the requested pod ports".into())
    } else {
        Ok(())
    }
}

/// NodeResourcesFit: cpu, memory and the pod count against allocatable
/// minus what is already requested.
pub fn node_resources_fit(pod: &PodInfo, node: &NodeInfo) -> Result<(), String> {
    let (have, want, used) = (&node.allocatable, &pod.requests, &node.requested);
    if used.pods + want.pods > have.pods {
        return Err("Too many pods".into());
    }
    if want.cpu > 0 && used.cpu + want.cpu > have.cpu {
        return Err("Insufficient cpu".into());
    }
    if want.memory > 0 && used.memory + want.memory > have.memory {
        return Err("Insufficient memory".into());
    }
    Ok(())
}

/// The score of a feasible node, 0..=200: NodeResourcesFit's
/// LeastAllocated (free cpu and memory after placing the pod, 0..=100)
/// plus spreading (fewer pods of the same owner here, 0..=100).
pub fn score(pod: &PodInfo, node: &NodeInfo, most_of_owner: u32) -> u64 {
    let free = |have: i64, used: i64, want: i64| -> u64 {
        if have <= 0 {
            return 0;
        }
        (((have - used - want).max(0) * 100) / have) as u64
    };
    let least_allocated = (free(node.allocatable.cpu, node.requested.cpu, pod.requests.cpu)
        + free(
            node.allocatable.memory,
            node.requested.memory,
            pod.requests.memory,
        ))
        / 2;
    let spread = match &pod.owner {
        Some(owner) if most_of_owner > 0 => {
            let here = node.owners.get(owner).copied().unwrap_or(0);
            u64::from(most_of_owner.saturating_sub(here)) * 100 / u64::from(most_of_owner)
        }
        _ => 100,
    };
    least_allocated + spread
}

/// Upstream's summary of why no node fits: "0/3 nodes are available: 1
/// node(s) had untolerated taint {a: b}, 2 Insufficient cpu. preemption:
/// ..." (reasons counted and sorted).
pub fn unschedulable_message(total: usize, reasons: &[String]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!(
        "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests;
