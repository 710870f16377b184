//! The nftables mode's table, `ip skiff-proxy`, shaped as kube-proxy's
//! (`pkg/proxy/nftables/proxier.go`), computed without I/O:
//!
//! - the map `service-ips`, keyed `daddr . l4proto . dport`, sends each
//!   virtual server to its Service port's chain (`svc-…` for ClusterIPs,
//!   `ext-…` for node ports, external and load-balancer IPs);
//! - a Service chain checks the affinity sets, then picks an endpoint with
//!   a cascade of `numgen random mod N`; an endpoint chain (`ep-…`) marks hairpin
//!   traffic for masquerade, records affinity and DNATs;
//! - the set `no-endpoint-services` rejects what has nowhere to go, before
//!   NAT (prerouting and output at priority -110);
//! - traffic marked 0x4000 is masqueraded on its way out.
//!
//! A sync renders the whole [`Table`] and [`diff`] turns the last one and
//! the new one into the operations ([`Op`]) that change only what
//! changed: one endpoint's change rewrites its Service's chains and map
//! elements, not the table. The operations are data, not text: they go
//! to the kernel as nf_tables netlink batches of at most
//! [`MAX_OPERATIONS`] ([`netlink`], [`socket`]), since `nft -f` first
//! loads the kernel's whole ruleset into its cache (most of a second with
//! 10,000 Services) before it applies even one line. Each prints as the
//! nft line that does the same ([`Display`](std::fmt::Display)), for the
//! logs, the errors and the tests that check them with the real nft.

pub mod netlink;
pub mod socket;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use crate::model::{Address, Backend, PortName, PortRules, Protocol, Traffic, Virtual};

/// The table the proxy owns in each node's namespace; it touches no
/// other.
pub const TABLE: &str = "skiff-proxy";

/// The mark of traffic to masquerade, as kube-proxy's.
pub const MASQUERADE_MARK: &str = "0x4000";

/// The most operations one transaction carries (a first sync of
/// thousands of Services is split).
pub const MAX_OPERATIONS: usize = 1000;

/// The map from virtual servers to their Service port's chain.
pub const SERVICE_IPS: &str = "service-ips";

/// The set of virtual servers without endpoints.
pub const NO_ENDPOINTS: &str = "no-endpoint-services";

/// The chain that marks a packet for masquerade.
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";

/// The table's contents that follow from the Services (the base chains
/// and maps of [`base`] hold them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Chains by name, with their rules.
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// Affinity sets by name, with their timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// `service-ips`: each virtual server's verdict.
    pub service_ips: BTreeMap<Address, Verdict>,
    /// `no-endpoint-services`: the virtual servers that reject.
    pub no_endpoints: BTreeSet<Address>,
}

/// Where a rule or a map element sends a packet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// To a chain, coming back at its end (`jump CHAIN`).
    Jump(String),
    /// To a chain for good (`goto CHAIN`).
    Goto(String),
}

impl Verdict {
    /// The chain it names.
    pub fn chain(&self) -> &str {
        match self {
            Verdict::Jump(chain) | Verdict::Goto(chain) => chain,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Jump(chain) => write!(f, "jump {chain}"),
            Verdict::Goto(chain) => write!(f, "goto {chain}"),
        }
    }
}

/// The rules a Service port's chains hold: these few shapes, which the
/// netlink codec encodes one by one ([`netlink`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `jump CHAIN` or `goto CHAIN`, unconditionally.
    Verdict(Verdict),
    /// `ip saddr @SET goto CHAIN`: a client the affinity set remembers
    /// goes back to its endpoint.
    Remembered {
        /// The affinity set.
        set: String,
        /// The endpoint's chain.
        chain: String,
    },
    /// `numgen random mod N 0 goto CHAIN`: one in `modulus` goes there.
    Random {
        /// N.
        modulus: u32,
        /// The endpoint's chain.
        chain: String,
    },
    /// `ip saddr A jump CHAIN`: traffic from the address (an endpoint
    /// reaching itself through its Service: hairpin) goes through there.
    From {
        /// The source address.
        source: Ipv4Addr,
        /// Where it jumps.
        chain: String,
    },
    /// `update @SET { ip saddr }`: the affinity set remembers the client.
    Remember {
        /// The affinity set.
        set: String,
    },
    /// `meta l4proto P dnat to A:P`.
    Dnat {
        /// The protocol matched (the DNAT names a port, so nft wants one).
        protocol: Protocol,
        /// The endpoint.
        to: Backend,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Verdict(verdict) => write!(f, "{verdict}"),
            Rule::Remembered { set, chain } => write!(f, "ip saddr @{set} goto {chain}"),
            Rule::Random { modulus, chain } => {
                write!(f, "numgen random mod {modulus} 0 goto {chain}")
            }
            Rule::From { source, chain } => write!(f, "ip saddr {source} jump {chain}"),
            Rule::Remember { set } => write!(f, "update @{set} {{ ip saddr }}"),
            Rule::Dnat { protocol, to } => write!(
                f,
                "meta l4proto {} dnat to {}:{}",
                protocol.name(),
                to.ip,
                to.port
            ),
        }
    }
}

/// One change to the table, as [`diff`] plans it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// An affinity set: client addresses that expire after `timeout`
    /// seconds, added to by the packet path (`flags dynamic,timeout`).
    AddSet {
        /// Its name.
        name: String,
        /// Its timeout, in seconds.
        timeout: u32,
    },
    /// A regular chain (no hook).
    AddChain(String),
    /// Every rule of a chain removed.
    FlushChain(String),
    /// A chain removed (it must be empty and unreferenced).
    DeleteChain(String),
    /// A rule appended to a chain.
    AddRule {
        /// The chain.
        chain: String,
        /// The rule.
        rule: Rule,
    },
    /// An affinity set removed (no rule may use it).
    DeleteSet(String),
    /// A virtual server's element in `service-ips`.
    AddServiceIp(Address, Verdict),
    /// A virtual server's element gone from `service-ips`.
    DeleteServiceIp(Address),
    /// A virtual server's element in `no-endpoint-services`.
    AddNoEndpoints(Address),
    /// A virtual server's element gone from `no-endpoint-services`.
    DeleteNoEndpoints(Address),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = format!("ip {TABLE}");
        match self {
            Op::AddSet { name, timeout } => write!(
                f,
                "add set {t} {name} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"
            ),
            Op::AddChain(chain) => write!(f, "add chain {t} {chain}"),
            Op::FlushChain(chain) => write!(f, "flush chain {t} {chain}"),
            Op::DeleteChain(chain) => write!(f, "delete chain {t} {chain}"),
            Op::AddRule { chain, rule } => write!(f, "add rule {t} {chain} {rule}"),
            Op::DeleteSet(set) => write!(f, "delete set {t} {set}"),
            Op::AddServiceIp(address, verdict) => write!(
                f,
                "add element {t} {SERVICE_IPS} {{ {} : {verdict} }}",
                key(address)
            ),
            Op::DeleteServiceIp(address) => {
                write!(f, "delete element {t} {SERVICE_IPS} {{ {} }}", key(address))
            }
            Op::AddNoEndpoints(address) => {
                write!(f, "add element {t} {NO_ENDPOINTS} {{ {} }}", key(address))
            }
            Op::DeleteNoEndpoints(address) => {
                write!(f, "delete element {t} {NO_ENDPOINTS} {{ {} }}", key(address))
            }
        }
    }
}

/// A set or map key's type: `daddr . l4proto . dport`.
pub const KEY_TYPE: &str = "type ipv4_addr . inet_proto . inet_service";

/// The rule that refuses a new connection to a virtual server without
/// endpoints (the set `no-endpoint-services`).
pub const REJECT_NO_ENDPOINTS: &str =
    "ct state new ip daddr . meta l4proto . th dport @no-endpoint-services reject";

/// A table started afresh: emptied of anything an earlier run left.
pub fn fresh_table() -> Vec<String> {
    let t = format!("ip {TABLE}");
    vec![
        format!("add table {t}"),
        format!("delete table {t}"),
        format!("add table {t}"),
    ]
}

/// The base chains: filter hooks before NAT (to reject), NAT hooks at
/// DNAT (to pick endpoints) and SNAT (to masquerade).
pub fn hook_chains() -> Vec<String> {
    let t = format!("ip {TABLE}");
    // The output hooks take priority numbers: nft 1.0.6 refuses
    // `dstnat` there.
    [
        ("filter-prerouting", "filter", "prerouting", -110),
        ("filter-output", "filter", "output", -110),
        ("nat-prerouting", "nat", "prerouting", -100),
        ("nat-output", "nat", "output", -100),
        ("nat-postrouting", "nat", "postrouting", 100),
    ]
    .into_iter()
    .map(|(chain, kind, hook, priority)| {
        format!("add chain {t} {chain} {{ type {kind} hook {hook} priority {priority} ; }}")
    })
    .collect()
}

/// The rules of the chain `masquerading`: traffic marked
/// [`MASQUERADE_MARK`] leaves with the node's address (and the mark
/// cleared).
pub fn masquerading_rules() -> Vec<String> {
    let t = format!("ip {TABLE}");
    let mark = MASQUERADE_MARK;
    vec![
        format!("add rule {t} masquerading meta mark & {mark} == 0 return"),
        format!("add rule {t} masquerading meta mark set meta mark ^ {mark}"),
        format!("add rule {t} masquerading masquerade fully-random"),
    ]
}

/// What a sync writes first when it starts afresh: the table emptied of
/// anything an earlier run left, its maps, base chains and hooks.
///
/// This stays nft text, run once through `nft -f` on a fresh start: it
/// is a few dozen lines written once (or at a full resync), not the
/// hot path, and its rules (reject, `ct state`, `th dport`, masquerade
/// fully-random, the hooks and their priorities) are the part of the
/// table whose encoding nft knows best; only the operations of [`diff`]
/// go over netlink.
pub fn base() -> Vec<String> {
    let key = KEY_TYPE;
    let t = format!("ip {TABLE}");
    let mut ops = fresh_table();
    ops.push(format!("add map {t} {SERVICE_IPS} {{ {key} : verdict ; }}"));
    ops.push(format!("add set {t} {NO_ENDPOINTS} {{ {key} ; }}"));
    ops.extend(hook_chains());
    for chain in ["services", "masquerading", MARK_FOR_MASQUERADE] {
        ops.push(format!("add chain {t} {chain}"));
    }
    for (chain, rule) in [
        ("filter-prerouting", REJECT_NO_ENDPOINTS),
        ("filter-output", REJECT_NO_ENDPOINTS),
        ("nat-prerouting", "jump services"),
        ("nat-output", "jump services"),
        ("nat-postrouting", "jump masquerading"),
        (
            "services",
            "ip daddr . meta l4proto . th dport vmap @service-ips",
        ),
    ] {
        ops.push(format!("add rule {t} {chain} {rule}"));
    }
    ops.extend(masquerading_rules());
    ops.push(format!(
        "add rule {t} {MARK_FOR_MASQUERADE} meta mark set meta mark | {MASQUERADE_MARK}"
    ));
    ops
}

/// A Service port's part of chain names: `ns/name/proto/port`.
fn id(name: &PortName) -> String {
    let (namespace, service) = &name.service;
    format!(
        "{namespace}/{service}/{}/{}",
        name.protocol.name(),
        name.port
    )
}

fn endpoint_part(backend: &Backend) -> String {
    format!("{}/{}", backend.ip, backend.port)
}

fn endpoint_chain(service: &str, backend: &Backend) -> String {
    format!("ep-{service}__{}", endpoint_part(backend))
}

/// A set's timeout is part of its name: a new timeout is a new set, so
/// the rules that use it change with it and the old one goes unused.
fn affinity_set(service: &str, backend: &Backend, timeout: u32) -> String {
    format!("aff-{service}__{}__{timeout}s", endpoint_part(backend))
}

/// nft's spelling of a map key.
pub fn key(address: &Address) -> String {
    format!(
        "{} . {} . {}",
        address.ip,
        address.protocol.name(),
        address.port
    )
}

/// The rules that pick an endpoint: affinity first, then at random.
fn balance(service: &str, virtual_: &Virtual) -> Vec<Rule> {
    let mut rules = Vec::new();
    if virtual_.masquerade {
        rules.push(Rule::Verdict(Verdict::Jump(MARK_FOR_MASQUERADE.to_owned())));
    }
    if let Some(timeout) = virtual_.affinity {
        rules.extend(virtual_.backends.iter().map(|b| Rule::Remembered {
            set: affinity_set(service, b, timeout),
            chain: endpoint_chain(service, b),
        }));
    }
    // A cascade, as kube-proxy's iptables mode does with `statistic`: the
    // i-th of n endpoints is taken with probability 1/(n-i) by a fresh
    // `numgen`, the last one otherwise, so each is taken with 1/n. A
    // `vmap` would make an anonymous set per Service, and the kernel finds
    // those by walking the transaction: quadratic in a first sync (107 s
    // for 10,000 Services, where this takes 5 s).
    let count = virtual_.backends.len();
    for (i, backend) in virtual_.backends.iter().enumerate() {
        let chain = endpoint_chain(service, backend);
        rules.push(match count - i {
            1 => Rule::Verdict(Verdict::Goto(chain)),
            left => Rule::Random {
                modulus: u32::try_from(left).unwrap_or(u32::MAX),
                chain,
            },
        });
    }
    rules
}

/// The part of the table that programs one Service port: its chains,
/// sets and map elements are its own (their names start with its id), so
/// ports are rendered, and diffed, one by one.
pub fn render(port: &PortRules) -> Table {
    let mut table = Table::default();
    for (address, virtual_) in &port.virtuals {
        if virtual_.backends.is_empty() {
            table.no_endpoints.insert(*address);
            continue;
        }
        let service = id(&virtual_.service);
        let chain = match virtual_.traffic {
            Traffic::Internal => format!("svc-{service}"),
            Traffic::External => format!("ext-{service}"),
        };
        table
            .service_ips
            .insert(*address, Verdict::Goto(chain.clone()));
        if table.chains.contains_key(&chain) {
            continue;
        }
        table.chains.insert(chain, balance(&service, virtual_));
        for backend in &virtual_.backends {
            let mut rules = vec![Rule::From {
                source: backend.ip,
                chain: MARK_FOR_MASQUERADE.to_owned(),
            }];
            if let Some(timeout) = virtual_.affinity {
                let set = affinity_set(&service, backend, timeout);
                rules.push(Rule::Remember { set: set.clone() });
                table.sets.insert(set, timeout);
            }
            rules.push(Rule::Dnat {
                protocol: address.protocol,
                to: *backend,
            });
            table
                .chains
                .insert(endpoint_chain(&service, backend), rules);
        }
    }
    table
}

/// The operations that turn `old` into `new`, in an order the kernel
/// accepts: sets and chains exist before they are referenced, and are
/// removed only once nothing refers to them.
pub fn diff(old: &Table, new: &Table) -> Vec<Op> {
    let mut ops = Vec::new();
    for (set, timeout) in &new.sets {
        if !old.sets.contains_key(set) {
            ops.push(Op::AddSet {
                name: set.clone(),
                timeout: *timeout,
            });
        }
    }
    for chain in new.chains.keys() {
        if !old.chains.contains_key(chain) {
            ops.push(Op::AddChain(chain.clone()));
        }
    }
    for (chain, rules) in &new.chains {
        match old.chains.get(chain) {
            Some(before) if before == rules => continue,
            Some(_) => ops.push(Op::FlushChain(chain.clone())),
            None => {}
        }
        ops.extend(rules.iter().map(|rule| Op::AddRule {
            chain: chain.clone(),
            rule: rule.clone(),
        }));
    }
    for (address, verdict) in &old.service_ips {
        if new.service_ips.get(address) != Some(verdict) {
            ops.push(Op::DeleteServiceIp(*address));
        }
    }
    for (address, verdict) in &new.service_ips {
        if old.service_ips.get(address) != Some(verdict) {
            ops.push(Op::AddServiceIp(*address, verdict.clone()));
        }
    }
    for address in old.no_endpoints.difference(&new.no_endpoints) {
        ops.push(Op::DeleteNoEndpoints(*address));
    }
    for address in new.no_endpoints.difference(&old.no_endpoints) {
        ops.push(Op::AddNoEndpoints(*address));
    }
    let gone: Vec<&String> = old
        .chains
        .keys()
        .filter(|c| !new.chains.contains_key(*c))
        .collect();
    ops.extend(gone.iter().map(|c| Op::FlushChain((*c).clone())));
    ops.extend(gone.iter().map(|c| Op::DeleteChain((*c).clone())));
    for set in old.sets.keys() {
        if !new.sets.contains_key(set) {
            ops.push(Op::DeleteSet(set.clone()));
        }
    }
    ops
}

/// `ops` as `nft -f` scripts of at most [`MAX_OPERATIONS`] lines each.
pub fn transactions(ops: &[String]) -> Vec<String> {
    ops.chunks(MAX_OPERATIONS)
        .map(|chunk| {
            let mut script = chunk.join("\n");
            script.push('\n');
            script
        })
        .collect()
}

/// Checks `script` with the real `nft -c` in a network namespace of the
/// test's own (`unshare --net`): the kernel must accept every line. Where
/// neither can run (not root, say) the test is skipped, except in CI.
#[cfg(test)]
pub(crate) fn checked_by_nft(script: &str) {
    use std::io::Write;
    let skip = |why: &str| {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs unshare and nft as root: {why}"
        );
        eprintln!("SKIPPED: {why}");
    };
    let unshare = std::process::Command::new("unshare")
        .args(["--net", "nft", "-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = unshare else {
        return skip("no unshare");
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No such file") || stderr.contains("Operation not permitted") {
        return skip(&stderr);
    }
    assert!(output.status.success(), "{stderr}");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::PortName;
    use std::net::Ipv4Addr;

    /// The operations as nft lines.
    pub(crate) fn text(ops: &[Op]) -> Vec<String> {
        ops.iter().map(ToString::to_string).collect()
    }

    pub(crate) fn backend(last: u8) -> Backend {
        Backend {
            ip: Ipv4Addr::new(10, 244, 1, last),
            port: 8080,
        }
    }

    pub(crate) fn name() -> PortName {
        PortName {
            service: ("default".into(), "web".into()),
            port: "http".into(),
            protocol: Protocol::Tcp,
        }
    }

    /// The Service default/web's port http: a ClusterIP and a node port,
    /// with these endpoints (10.244.1.N) and affinity.
    pub(crate) fn rules(backends: &[u8], affinity: Option<u32>) -> PortRules {
        let cluster = Address {
            ip: Ipv4Addr::new(10, 96, 0, 20),
            port: 80,
            protocol: Protocol::Tcp,
        };
        let node_port = Address {
            ip: Ipv4Addr::new(172, 18, 0, 2),
            port: 30080,
            protocol: Protocol::Tcp,
        };
        let virtual_ = |traffic| Virtual {
            service: name(),
            traffic,
            affinity,
            masquerade: traffic == Traffic::External,
            backends: backends.iter().map(|b| backend(*b)).collect(),
        };
        PortRules {
            virtuals: [
                (cluster, virtual_(Traffic::Internal)),
                (node_port, virtual_(Traffic::External)),
            ]
            .into(),
            health_check: None,
        }
    }

    #[test]
    fn a_service_renders_as_kube_proxys_chains() {
        let table = render(&rules(&[3, 4], Some(10800)));
        let text = |chain: &str| -> Vec<String> {
            table.chains[chain]
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            text("svc-default/web/tcp/http"),
            [
                "ip saddr @aff-default/web/tcp/http__10.244.1.3/8080__10800s goto ep-default/web/tcp/http__10.244.1.3/8080",
                "ip saddr @aff-default/web/tcp/http__10.244.1.4/8080__10800s goto ep-default/web/tcp/http__10.244.1.4/8080",
                "numgen random mod 2 0 goto ep-default/web/tcp/http__10.244.1.3/8080",
                "goto ep-default/web/tcp/http__10.244.1.4/8080",
            ]
        );
        assert_eq!(
            text("ext-default/web/tcp/http")[0],
            "jump mark-for-masquerade"
        );
        assert_eq!(
            text("ep-default/web/tcp/http__10.244.1.3/8080"),
            [
                "ip saddr 10.244.1.3 jump mark-for-masquerade",
                "update @aff-default/web/tcp/http__10.244.1.3/8080__10800s { ip saddr }",
                "meta l4proto tcp dnat to 10.244.1.3:8080",
            ]
        );
        assert_eq!(table.sets.len(), 2);
        assert_eq!(
            table
                .service_ips
                .values()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "goto svc-default/web/tcp/http",
                "goto ext-default/web/tcp/http"
            ]
        );
        let refused = render(&rules(&[], None));
        assert!(refused.chains.is_empty());
        assert_eq!(refused.no_endpoints.len(), 2);
    }

    #[test]
    fn one_endpoint_more_touches_only_its_services_chains_and_no_map() {
        let before = render(&rules(&[3, 4], None));
        let after = render(&rules(&[3, 4, 5], None));
        let ops = text(&diff(&before, &after));
        assert_eq!(
            ops,
            [
                "add chain ip skiff-proxy ep-default/web/tcp/http__10.244.1.5/8080",
                "add rule ip skiff-proxy ep-default/web/tcp/http__10.244.1.5/8080 ip saddr 10.244.1.5 jump mark-for-masquerade",
                "add rule ip skiff-proxy ep-default/web/tcp/http__10.244.1.5/8080 meta l4proto tcp dnat to 10.244.1.5:8080",
                "flush chain ip skiff-proxy ext-default/web/tcp/http",
                "add rule ip skiff-proxy ext-default/web/tcp/http jump mark-for-masquerade",
                "add rule ip skiff-proxy ext-default/web/tcp/http numgen random mod 3 0 goto ep-default/web/tcp/http__10.244.1.3/8080",
                "add rule ip skiff-proxy ext-default/web/tcp/http numgen random mod 2 0 goto ep-default/web/tcp/http__10.244.1.4/8080",
                "add rule ip skiff-proxy ext-default/web/tcp/http goto ep-default/web/tcp/http__10.244.1.5/8080",
                "flush chain ip skiff-proxy svc-default/web/tcp/http",
                "add rule ip skiff-proxy svc-default/web/tcp/http numgen random mod 3 0 goto ep-default/web/tcp/http__10.244.1.3/8080",
                "add rule ip skiff-proxy svc-default/web/tcp/http numgen random mod 2 0 goto ep-default/web/tcp/http__10.244.1.4/8080",
                "add rule ip skiff-proxy svc-default/web/tcp/http goto ep-default/web/tcp/http__10.244.1.5/8080",
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn the_last_endpoint_gone_leaves_a_rejecting_element_and_no_chain() {
        let before = render(&rules(&[3], Some(60)));
        let after = render(&rules(&[], Some(60)));
        let ops = text(&diff(&before, &after));
        let position = |text: &str| ops.iter().position(|o| o.starts_with(text)).unwrap();
        assert!(position("delete element ip skiff-proxy service-ips") < position("delete chain"));
        assert!(position("flush chain") < position("delete chain"));
        assert!(position("delete chain") < position("delete set"));
        assert_eq!(
            ops.iter()
                .filter(|o| o.starts_with("add element ip skiff-proxy no-endpoint-services"))
                .count(),
            2
        );
        assert!(text(&diff(&Table::default(), &before))
            .iter()
            .all(|o| o.starts_with("add ")));
    }

    #[test]
    fn a_first_sync_is_split_into_bounded_transactions() {
        let ops: Vec<String> = (0..2500).map(|i| format!("op {i}")).collect();
        let scripts = transactions(&ops);
        assert_eq!(scripts.len(), 3);
        assert_eq!(scripts[2].lines().count(), 500);
        assert!(base()[..3]
            .join("\n")
            .contains("delete table ip skiff-proxy"));
    }

    /// The rendered script, applied by the real `nft` in a network
    /// namespace of the test's own: the kernel accepts every line.
    #[test]
    fn nft_accepts_the_rendered_table_and_its_changes() {
        let first = render(&rules(&[3, 4], Some(10800)));
        let next = render(&rules(&[4, 5], Some(10800)));
        let mut script = base();
        script.extend(text(&diff(&Table::default(), &first)));
        script.extend(text(&diff(&first, &next)));
        script.extend(text(&diff(&next, &render(&rules(&[], None)))));
        checked_by_nft(&transactions(&script).concat());
    }
}
