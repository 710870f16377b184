//! The IPVS mode's nftables table, for what IPVS does not do (kube-proxy's
//! IPVS mode does the same with iptables and ipsets): the same table as
//! the nftables mode's ([`nftables::TABLE`], so a switch of modes starts
//! from a clean one), with its hooks and `masquerading` chain, and three
//! sets whose elements follow the Services:
//!
//! - `no-endpoint-services`: virtual servers without endpoints, whose new
//!   connections are rejected before IPVS sees them;
//! - `masquerade-services`: virtual servers for external traffic (node
//!   ports, external and load-balancer IPs, unless `Local`), whose
//!   packets are marked [`nftables::MASQUERADE_MARK`] (KUBE-MARK-MASQ);
//! - `cluster-ips`: the ClusterIP virtual servers, whose traffic from
//!   the node itself (its processes, host-network pods) is marked too:
//!   its source would be the virtual IP that `kube-ipvs0` holds, to which
//!   an endpoint on another node cannot reply (KUBE-CLUSTER-IP, for
//!   traffic not from a pod);
//! - `hairpin`: an endpoint reaching itself through its Service is
//!   masqueraded, or its reply would not come back through IPVS
//!   (KUBE-LOOP-BACK).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Address, Backend, PortName, PortRules, Protocol, Traffic};
use crate::nftables::{self, KEY_TYPE, MASQUERADE_MARK, TABLE};

/// The sets' elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sets {
    /// Virtual servers that reject.
    pub no_endpoints: BTreeSet<Address>,
    /// Virtual servers whose traffic is masqueraded.
    pub masquerade: BTreeSet<Address>,
    /// ClusterIP virtual servers: masqueraded from the node itself.
    pub cluster_ips: BTreeSet<Address>,
    /// Endpoints (with their protocol) that may reach themselves.
    pub hairpin: BTreeSet<(Backend, Protocol)>,
}

/// The sets the rules ask for.
pub fn sets(rules: &BTreeMap<PortName, PortRules>) -> Sets {
    let mut sets = Sets::default();
    for (address, virtual_) in rules.values().flat_map(|port| &port.virtuals) {
        if virtual_.backends.is_empty() {
            sets.no_endpoints.insert(*address);
        }
        if virtual_.masquerade {
            sets.masquerade.insert(*address);
        }
        if virtual_.traffic == Traffic::Internal {
            sets.cluster_ips.insert(*address);
        }
        sets.hairpin.extend(
            virtual_
                .backends
                .iter()
                .map(|backend| (*backend, address.protocol)),
        );
    }
    sets
}

/// The table afresh: its sets, base chains and rules.
pub fn base() -> Vec<String> {
    let t = format!("ip {TABLE}");
    let mut ops = nftables::fresh_table();
    ops.push(format!(
        "add set {t} no-endpoint-services {{ {KEY_TYPE} ; }}"
    ));
    ops.push(format!(
        "add set {t} masquerade-services {{ {KEY_TYPE} ; }}"
    ));
    ops.push(format!("add set {t} cluster-ips {{ {KEY_TYPE} ; }}"));
    ops.push(format!(
        "add set {t} hairpin {{ {KEY_TYPE} . ipv4_addr ; }}"
    ));
    ops.extend(nftables::hook_chains());
    ops.push(format!("add chain {t} masquerading"));
    let mark = |set: &str| {
        format!(
            "ip daddr . meta l4proto . th dport @{set} meta mark set meta mark | {MASQUERADE_MARK}"
        )
    };
    let (external, from_node) = (mark("masquerade-services"), mark("cluster-ips"));
    for (chain, rule) in [
        ("filter-prerouting", nftables::REJECT_NO_ENDPOINTS),
        ("filter-output", nftables::REJECT_NO_ENDPOINTS),
        ("nat-prerouting", external.as_str()),
        ("nat-output", external.as_str()),
        ("nat-output", from_node.as_str()),
        ("nat-postrouting", "jump masquerading"),
        (
            "nat-postrouting",
            "ip daddr . meta l4proto . th dport . ip saddr @hairpin masquerade",
        ),
    ] {
        ops.push(format!("add rule {t} {chain} {rule}"));
    }
    ops.extend(nftables::masquerading_rules());
    ops
}

fn hairpin_key((backend, protocol): &(Backend, Protocol)) -> String {
    format!(
        "{} . {} . {} . {}",
        backend.ip,
        protocol.name(),
        backend.port,
        backend.ip
    )
}

/// The element operations that turn `old` into `new`.
pub fn diff(old: &Sets, new: &Sets) -> Vec<String> {
    let t = format!("ip {TABLE}");
    let mut ops = Vec::new();
    let mut set = |name: &str, before: Vec<String>, after: Vec<String>| {
        let (before, after): (BTreeSet<String>, BTreeSet<String>) =
            (before.into_iter().collect(), after.into_iter().collect());
        for gone in before.difference(&after) {
            ops.push(format!("delete element {t} {name} {{ {gone} }}"));
        }
        for added in after.difference(&before) {
            ops.push(format!("add element {t} {name} {{ {added} }}"));
        }
    };
    let keys = |addresses: &BTreeSet<Address>| addresses.iter().map(nftables::key).collect();
    set(
        "no-endpoint-services",
        keys(&old.no_endpoints),
        keys(&new.no_endpoints),
    );
    set(
        "masquerade-services",
        keys(&old.masquerade),
        keys(&new.masquerade),
    );
    set(
        "cluster-ips",
        keys(&old.cluster_ips),
        keys(&new.cluster_ips),
    );
    set(
        "hairpin",
        old.hairpin.iter().map(hairpin_key).collect(),
        new.hairpin.iter().map(hairpin_key).collect(),
    );
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Virtual;
    use std::net::Ipv4Addr;

    fn rules(backends: &[u8]) -> BTreeMap<PortName, PortRules> {
        let name = PortName {
            service: ("default".into(), "web".into()),
            port: "http".into(),
            protocol: Protocol::Tcp,
        };
        let virtual_ = |traffic| Virtual {
            service: name.clone(),
            traffic,
            affinity: None,
            masquerade: traffic == Traffic::External,
            backends: backends
                .iter()
                .map(|b| Backend {
                    ip: Ipv4Addr::new(10, 244, 1, *b),
                    port: 8080,
                })
                .collect(),
        };
        let at = |ip: [u8; 4], port| Address {
            ip: ip.into(),
            port,
            protocol: Protocol::Tcp,
        };
        let port = PortRules {
            virtuals: [
                (at([10, 96, 0, 20], 80), virtual_(Traffic::Internal)),
                (at([172, 18, 0, 2], 30080), virtual_(Traffic::External)),
            ]
            .into(),
            health_check: None,
        };
        [(name, port)].into()
    }

    #[test]
    fn external_and_node_to_cluster_ip_traffic_is_marked_endpoints_may_hairpin_and_empty_services_reject(
    ) {
        let with = sets(&rules(&[3]));
        assert!(with.no_endpoints.is_empty());
        assert_eq!(with.masquerade.len(), 1, "the node port, not the ClusterIP");
        assert_eq!(
            diff(&Sets::default(), &with),
            [
                "add element ip skiff-proxy masquerade-services { 172.18.0.2 . tcp . 30080 }",
                "add element ip skiff-proxy cluster-ips { 10.96.0.20 . tcp . 80 }",
                "add element ip skiff-proxy hairpin { 10.244.1.3 . tcp . 8080 . 10.244.1.3 }",
            ]
        );
        let without = sets(&rules(&[]));
        assert_eq!(
            diff(&with, &without),
            [
                "add element ip skiff-proxy no-endpoint-services { 10.96.0.20 . tcp . 80 }",
                "add element ip skiff-proxy no-endpoint-services { 172.18.0.2 . tcp . 30080 }",
                "delete element ip skiff-proxy hairpin { 10.244.1.3 . tcp . 8080 . 10.244.1.3 }",
            ]
        );
        assert!(diff(&without, &without).is_empty());
    }

    /// The real `nft -c` accepts the table and its changes.
    #[test]
    fn nft_accepts_the_table_and_its_elements() {
        let mut script = base();
        script.extend(diff(&Sets::default(), &sets(&rules(&[3, 4]))));
        script.extend(diff(&sets(&rules(&[3, 4])), &sets(&rules(&[]))));
        nftables::checked_by_nft(&nftables::transactions(&script).concat());
    }
}
