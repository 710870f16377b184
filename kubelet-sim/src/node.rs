//! A simulated node, without I/O: its Node object and Lease, its pod CIDR
//! and host address, and the pod IPs it hands out.
//!
//! Node `i` (1-based) of up to 255 gets the pod CIDR `10.244.i.0/24`, as
//! the usual `10.244.0.0/16` cluster CIDR splits; larger simulated clusters
//! take `/24`s from `10.128.0.0/9` instead (`10.(128 + i/256).(i%256).0/24`,
//! room for 32,768 nodes). Host addresses are `172.18.(i/250).(i%250+2)`,
//! like kind's Docker network. None of these is ever routed: they are data.

use std::collections::BTreeSet;

use serde_json::{json, Value};

/// What every simulated node offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// CPUs, as a quantity (`8`).
    pub cpu: String,
    /// Memory, as a quantity (`32Gi`).
    pub memory: String,
    /// Pods.
    pub pods: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            cpu: "8".into(),
            memory: "32Gi".into(),
            pods: 110,
        }
    }
}

/// What a node registers with beside its own name and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// What it offers.
    pub capacity: Capacity,
    /// What runs its pods: `sim` nodes are labelled simulated.
    pub runtime: String,
    /// Where the apiserver reaches its kubelet server: the address (in the
    /// [`KUBELET_ADDRESS`] annotation, as simulated InternalIPs are not
    /// routed) and the port (`daemonEndpoints.kubeletEndpoint`).
    pub kubelet: (String, u16),
}

/// The annotation naming the address at which the apiserver reaches a
/// node's kubelet server.
pub const KUBELET_ADDRESS: &str = "kubelet.skiff.dev/address";

/// One simulated node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimNode {
    /// Its name: `skiff-node-3`.
    pub name: String,
    /// The first three octets of its pod CIDR.
    pub prefix: [u8; 3],
    /// Its host address.
    pub host_ip: String,
}

impl SimNode {
    /// Node `index` (1-based) of `total`, named `{prefix}-{index}`.
    pub fn new(name_prefix: &str, index: u32, total: u32) -> Self {
        let prefix = if total <= 255 {
            [10, 244, index as u8]
        } else {
            [10, (128 + index / 256).min(255) as u8, (index % 256) as u8]
        };
        SimNode {
            name: format!("{name_prefix}-{index}"),
            prefix,
            host_ip: format!("172.18.{}.{}", index / 250, index % 250 + 2),
        }
    }

    /// `10.244.3.0/24`.
    pub fn pod_cidr(&self) -> String {
        let [a, b, c] = self.prefix;
        format!("{a}.{b}.{c}.0/24")
    }

    /// Its Node object, registering as a kubelet does: labels, pod CIDR,
    /// capacity and allocatable, addresses, its kubelet's endpoint, node
    /// info, and Ready.
    pub fn object(&self, registration: &Registration, now: &str) -> Value {
        let (capacity, runtime) = (&registration.capacity, registration.runtime.as_str());
        let (kubelet_address, kubelet_port) = &registration.kubelet;
        let resources = json!({
            "cpu": capacity.cpu,
            "memory": capacity.memory,
            "pods": capacity.pods.to_string(),
            "ephemeral-storage": "100Gi",
        });
        let condition = |kind: &str, status: &str, reason: &str, message: &str| {
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                    "node.skiff.dev/simulated": (runtime == "sim").to_string(),
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0", KUBELET_ADDRESS: kubelet_address},
            },
            "spec": {"podCIDR": self.pod_cidr(), "podCIDRs": [self.pod_cidr()]},
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [
                    condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "addresses": [
                    {"type": "InternalIP", "address": self.host_ip},
                    {"type": "Hostname", "address": self.name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
                "nodeInfo": {
                    "machineID": "", "systemUUID": "", "bootID": "",
                    "kernelVersion": if runtime == "sim" { "simulated" } else { "host" },
                    "osImage": if runtime == "sim" { "Skiff simulated node" } else { "Skiff process node" },
                    "containerRuntimeVersion": format!("{runtime}://0.1.0"),
                    "kubeletVersion": "v1.33.0-skiff",
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        })
    }

    /// Its heartbeat Lease in `kube-node-lease`, renewed at `now`.
    pub fn lease(&self, now_micro: &str) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": now_micro},
        })
    }
}

/// The pod IPs of one node: `.2` to `.254` of its `/24`.
#[derive(Debug, Clone, Default)]
pub struct IpPool {
    used: BTreeSet<u8>,
}

impl IpPool {
    /// Takes the lowest free address.
    pub fn allocate(&mut self, node: &SimNode) -> Option<String> {
        let free = (2..=254u8).find(|host| !self.used.contains(host))?;
        self.used.insert(free);
        let [a, b, c] = node.prefix;
        Some(format!("{a}.{b}.{c}.{free}"))
    }

    /// Marks an address in use (a pod found running after a restart).
    pub fn mark(&mut self, node: &SimNode, ip: &str) {
        if let Some(host) = Self::host(node, ip) {
            self.used.insert(host);
        }
    }

    /// Frees an address.
    pub fn release(&mut self, node: &SimNode, ip: &str) {
        if let Some(host) = Self::host(node, ip) {
            self.used.remove(&host);
        }
    }

    fn host(node: &SimNode, ip: &str) -> Option<u8> {
        let [a, b, c] = node.prefix;
        ip.strip_prefix(&format!("{a}.{b}.{c}."))?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_addresses() {
        let node = SimNode::new("skiff-node", 3, 3);
        assert_eq!(
            (node.name.as_str(), node.pod_cidr(), node.host_ip.as_str()),
            ("skiff-node-3", "10.244.3.0/24".into(), "172.18.0.5")
        );
        let big = SimNode::new("skiff-node", 4999, 5000);
        assert_eq!(big.pod_cidr(), "10.147.135.0/24");
        assert_eq!(big.host_ip, "172.18.19.251");
        let registration = Registration {
            capacity: Capacity::default(),
            runtime: "sim".into(),
            kubelet: ("127.0.0.1".into(), 10250),
        };
        let object = node.object(&registration, "2026-11-23T10:00:00Z");
        assert_eq!(
            object["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            10250
        );
        assert_eq!(object["status"]["allocatable"]["pods"], "110");
        assert_eq!(
            object["metadata"]["labels"]["kubernetes.io/hostname"],
            "skiff-node-3"
        );
    }

    #[test]
    fn ips_are_handed_out_once_and_reused_after_release() {
        let node = SimNode::new("n", 1, 1);
        let mut pool = IpPool::default();
        pool.mark(&node, "10.244.1.2");
        assert_eq!(pool.allocate(&node).unwrap(), "10.244.1.3");
        pool.release(&node, "10.244.1.2");
        assert_eq!(pool.allocate(&node).unwrap(), "10.244.1.2");
        let all: Vec<String> = std::iter::from_fn(|| pool.allocate(&node)).collect();
        assert_eq!(all.len(), 251);
    }
}
