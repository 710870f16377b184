//! `hostPort`s: a node's nftables rules that send what reaches its address
//! on a host port to the pod's port (DNAT), from other nodes and pods
//! (prerouting) and from the node itself (output), as the CNI portmap
//! plugin does. The node's whole table is written from the pods' ports at
//! each change (`nft -f -`, one transaction), so it never drifts.

use k8s_openapi::api::core::v1::Pod;

/// The table Skiff owns in each node's namespace.
pub const TABLE: &str = "skiff-hostports";

/// One mapping: protocol, host port, pod IP, container port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mapping {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port on the node's address.
    pub host_port: u16,
    /// The pod's address.
    pub pod_ip: String,
    /// The container's port.
    pub container_port: u16,
}

/// The host ports of `pod` at `pod_ip` (none for hostNetwork pods: their
/// ports are the node's already).
pub fn of(pod: &Pod, pod_ip: &str) -> Vec<Mapping> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.host_network) == Some(true) {
        return Vec::new();
    }
    spec.iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
            Some(Mapping {
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                host_port,
                pod_ip: pod_ip.to_owned(),
                container_port: u16::try_from(p.container_port).ok()?,
            })
        })
        .filter(|m| m.protocol == "tcp" || m.protocol == "udp")
        .collect()
}

/// The `nft -f` script that makes the node at `node_ip` map `mappings`.
pub fn script(node_ip: &str, mappings: &[Mapping]) -> String {
    let mut rules = String::new();
    for m in mappings {
        rules.push_str(&format!(
            "    add rule ip {TABLE} ports ip daddr {node_ip} {} dport {} dnat to {}:{}\n",
            m.protocol, m.host_port, m.pod_ip, m.container_port
        ));
    }
    // Created if missing, then emptied and filled in one transaction. The
    // output hook takes priority -100: nft 1.0.6 refuses `dstnat` there.
    format!(
        "add table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         add table ip {TABLE}\n\
         add chain ip {TABLE} ports\n\
         add chain ip {TABLE} prerouting {{ type nat hook prerouting priority -100; }}\n\
         add chain ip {TABLE} output {{ type nat hook output priority -100; }}\n\
         add rule ip {TABLE} prerouting jump ports\n\
         add rule ip {TABLE} output jump ports\n\
         {}",
        rules.replace("    ", "")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_ports_become_dnat_rules() {
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [{"name": "c",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
                      {"containerPort": 9000}]}]}}))
        .unwrap();
        let mappings = of(&pod, "10.244.1.5");
        assert_eq!(mappings.len(), 2);
        let text = script("172.18.0.3", &mappings);
        assert!(text.contains("add rule ip skiff-hostports ports ip daddr 172.18.0.3 tcp dport 8080 dnat to 10.244.1.5:80\n"));
        assert!(text.contains("udp dport 5353 dnat to 10.244.1.5:53"));
        assert!(text.starts_with("add table ip skiff-hostports\ndelete table ip skiff-hostports\n"));
        let host: Pod = serde_json::from_value(
            json!({"spec": {"hostNetwork": true, "containers": [{"name": "c",
            "ports": [{"containerPort": 80, "hostPort": 80}]}]}}),
        )
        .unwrap();
        assert!(of(&host, "172.18.0.3").is_empty());
    }
}
