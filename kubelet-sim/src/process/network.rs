//! The cluster network of real pods, all in network namespaces of its own
//! (host-gw, like flannel's backend of that name):
//!
//! - `skiff-cluster` holds one bridge, `skiff0`, the nodes' wire, with the
//!   control plane's address on it ([`CONTROL_PLANE`], where the server
//!   also listens, so that pods reach the `kubernetes` and `kube-dns`
//!   Services) and a route to each node's pod CIDR through that node;
//! - each node is a namespace `skiff-<node>` with a veth `eth0` into that
//!   bridge holding its InternalIP (`172.18.0.x/16`), a bridge `cbr0` for
//!   its pods holding the first address of its pod CIDR, forwarding on,
//!   and a route to every other node's pod CIDR through that node's IP;
//! - each pod is a namespace `skiff-pod-<uid>` with a veth `eth0` into its
//!   node's `cbr0`, its pod IP, `lo` up and a default route via the node.
//!
//! Pods reach pods and nodes without NAT, and a pod sees its own IP as
//! others see it. Nothing here touches the namespace Skiff runs in.
//!
//! What to run is planned without I/O ([`Step`]s of `ip -batch` lines,
//! the kernel's own tool; one process per namespace and step) and then
//! applied by [`apply`].

use std::path::Path;

use crate::node::SimNode;

/// The namespace of the nodes' wire.
pub const CLUSTER: &str = "skiff-cluster";
/// Every namespace Skiff creates starts so.
pub const PREFIX: &str = "skiff-";
/// Where `ip netns` keeps its namespaces.
pub const NETNS_DIR: &str = "/run/netns";
const WIRE: &str = "skiff0";
const POD_BRIDGE: &str = "cbr0";

/// The namespace of `node`.
pub fn node_namespace(node: &SimNode) -> String {
    named_node_namespace(&node.name)
}

/// The namespace of the node named `name`.
pub fn named_node_namespace(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The namespace of the pod with this uid.
pub fn pod_namespace(uid: &str) -> String {
    format!("{PREFIX}pod-{uid}")
}

/// One `ip -batch` run: in `namespace` (None: where Skiff runs), these
/// lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The namespace the lines apply in.
    pub namespace: Option<String>,
    /// `ip` commands without the `ip`.
    pub lines: Vec<String>,
}

fn step(namespace: Option<&str>, lines: &[String]) -> Step {
    Step {
        namespace: namespace.map(str::to_owned),
        lines: lines.to_vec(),
    }
}

/// The control plane's address on the nodes' wire: the server's API and
/// DNS listen there too (in `skiff-cluster`), the endpoints of the
/// `kubernetes` and `kube-dns` Services.
pub const CONTROL_PLANE: &str = "172.18.0.1";

/// The nodes' wire.
pub fn cluster() -> Vec<Step> {
    vec![
        step(None, &[format!("netns add {CLUSTER}")]),
        step(
            Some(CLUSTER),
            &[
                "link set lo up".into(),
                format!("link add {WIRE} type bridge"),
                format!("addr add {CONTROL_PLANE}/16 dev {WIRE}"),
                format!("link set {WIRE} up"),
            ],
        ),
    ]
}

/// The host's end of its veth onto the nodes' wire (`--host-routes`).
pub const HOST_LINK: &str = "skiff-host";

/// The address the host takes on the nodes' wire with `--host-routes`.
pub const HOST_ADDRESS: &str = "172.18.255.254";

/// What `--host-routes` asks: a veth from the namespace Skiff runs in
/// onto the nodes' wire, with an address there and a route to each node's
/// pod CIDR through that node, so the host reaches pods directly. It goes
/// with [`unwire_host`] (or when `skiff-cluster` goes: a veth dies with
/// either end).
pub fn host(all: &[SimNode]) -> Vec<Step> {
    let mut here = vec![
        format!("link add {HOST_LINK} type veth peer name skh netns {CLUSTER}"),
        format!("addr add {HOST_ADDRESS}/16 dev {HOST_LINK}"),
        format!("link set {HOST_LINK} up"),
    ];
    here.extend(all.iter().map(|n| {
        format!(
            "route add {} via {} dev {HOST_LINK}",
            n.pod_cidr(),
            n.host_ip
        )
    }));
    vec![
        step(None, &here),
        step(Some(CLUSTER), &[format!("link set skh master {WIRE} up")]),
    ]
}

/// The gateway of a node's pods: the first address of its pod CIDR.
pub fn gateway(node: &SimNode) -> String {
    let [a, b, c] = node.prefix;
    format!("{a}.{b}.{c}.1")
}

/// `node` of `all`, wired into the cluster.
pub fn node(node: &SimNode, all: &[SimNode]) -> Vec<Step> {
    let namespace = node_namespace(node);
    let [_, b, c] = node.prefix;
    let wire = format!("skn{b}-{c}");
    let mut inside = vec![
        "link set lo up".into(),
        format!("addr add {}/16 dev eth0", node.host_ip),
        "link set eth0 up".into(),
        format!("link add {POD_BRIDGE} type bridge"),
        format!("addr add {}/24 dev {POD_BRIDGE}", gateway(node)),
        format!("link set {POD_BRIDGE} up"),
        // As a node's default route: a ClusterIP asked from the node
        // itself (a hostNetwork pod) must route before the output hook's
        // DNAT turns it into a pod.
        format!("route add default via {CONTROL_PLANE} dev eth0"),
    ];
    inside.extend(
        all.iter()
            .filter(|other| other.name != node.name)
            .map(|other| {
                format!(
                    "route add {} via {} dev eth0",
                    other.pod_cidr(),
                    other.host_ip
                )
            }),
    );
    vec![
        step(None, &[format!("netns add {namespace}")]),
        step(
            Some(CLUSTER),
            &[
                format!("link add {wire} type veth peer name eth0 netns {namespace}"),
                format!("link set {wire} master {WIRE} up"),
            ],
        ),
        step(Some(&namespace), &inside),
        // Answers from the control plane find their way back to pods.
        step(
            Some(CLUSTER),
            &[format!(
                "route add {} via {} dev {WIRE}",
                node.pod_cidr(),
                node.host_ip
            )],
        ),
    ]
}

/// The node-side name of a pod's veth: at most 15 bytes, as the kernel
/// allows.
fn pod_link(uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    format!("skv{hex}")
}

/// The sandbox of the pod `uid` on `node`, at `ip`.
pub fn pod(uid: &str, node: &SimNode, ip: &str) -> Vec<Step> {
    let namespace = pod_namespace(uid);
    let link = pod_link(uid);
    vec![
        step(None, &[format!("netns add {namespace}")]),
        step(
            Some(&node_namespace(node)),
            &[
                format!("link add {link} type veth peer name eth0 netns {namespace}"),
                format!("link set {link} master {POD_BRIDGE} up"),
            ],
        ),
        step(
            Some(&namespace),
            &[
                "link set lo up".into(),
                format!("addr add {ip}/24 dev eth0"),
                "link set eth0 up".into(),
                format!("route add default via {}", gateway(node)),
            ],
        ),
    ]
}

/// Removes the host's veth onto the wire, and its routes with it, at once
/// (the wire's namespace may outlive its name while a socket holds it).
pub fn unwire_host() -> Step {
    step(None, &[format!("link del {HOST_LINK}")])
}

/// Removes a namespace Skiff made (a veth in it goes with it).
pub fn remove(namespace: &str) -> Step {
    step(None, &[format!("netns del {namespace}")])
}

/// The path of a named namespace.
pub fn path(namespace: &str) -> std::path::PathBuf {
    Path::new(NETNS_DIR).join(namespace)
}

/// Runs the steps in order; the first that fails stops the rest.
pub async fn apply(steps: &[Step]) -> Result<(), String> {
    for step in steps {
        let mut args: Vec<&str> = Vec::new();
        if let Some(namespace) = &step.namespace {
            args.extend(["-n", namespace]);
        }
        args.extend(["-batch", "-"]);
        let mut script = step.lines.join("\n");
        script.push('\n');
        skiff_proxy::run::run_in(None, "ip", &args, &script, "ip (iproute2)")
            .await
            .map_err(|error| {
                let place = step.namespace.as_deref().map(|n| format!(" -n {n}"));
                format!("ip{}: {error}", place.unwrap_or_default())
            })?;
    }
    Ok(())
}

/// The namespaces Skiff made that exist now (left by a killed run, say).
pub fn existing() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(PREFIX))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_wired_to_the_cluster_and_routes_to_the_others() {
        let all: Vec<SimNode> = (1..=3).map(|i| SimNode::new("n", i, 3)).collect();
        let steps = node(&all[1], &all);
        assert_eq!(steps[0].lines, ["netns add skiff-n-2"]);
        assert_eq!(steps[1].namespace.as_deref(), Some(CLUSTER));
        assert_eq!(
            steps[1].lines[0],
            "link add skn244-2 type veth peer name eth0 netns skiff-n-2"
        );
        let inside = &steps[2];
        assert_eq!(inside.namespace.as_deref(), Some("skiff-n-2"));
        assert!(inside
            .lines
            .contains(&"addr add 172.18.0.4/16 dev eth0".into()));
        assert!(inside
            .lines
            .contains(&"addr add 10.244.2.1/24 dev cbr0".into()));
        let routes: Vec<&String> = inside
            .lines
            .iter()
            .filter(|l| l.starts_with("route"))
            .collect();
        assert_eq!(
            routes,
            [
                "route add default via 172.18.0.1 dev eth0",
                "route add 10.244.1.0/24 via 172.18.0.3 dev eth0",
                "route add 10.244.3.0/24 via 172.18.0.5 dev eth0"
            ]
        );
        assert_eq!(steps[3].namespace.as_deref(), Some(CLUSTER));
        assert_eq!(
            steps[3].lines,
            ["route add 10.244.2.0/24 via 172.18.0.4 dev skiff0"]
        );
    }

    #[test]
    fn the_wire_holds_the_control_planes_address() {
        assert!(cluster()[1]
            .lines
            .contains(&"addr add 172.18.0.1/16 dev skiff0".into()));
    }

    #[test]
    fn host_routes_lead_to_each_nodes_pods() {
        let all: Vec<SimNode> = (1..=2).map(|i| SimNode::new("n", i, 2)).collect();
        let steps = host(&all);
        assert_eq!(steps[0].namespace, None);
        assert!(steps[0]
            .lines
            .contains(&"route add 10.244.2.0/24 via 172.18.0.4 dev skiff-host".into()));
        assert_eq!(steps[1].lines, ["link set skh master skiff0 up"]);
    }

    #[test]
    fn a_pod_gets_a_veth_into_its_nodes_bridge_and_a_default_route() {
        let node = SimNode::new("n", 1, 1);
        let uid = "0f8e1c2a-9b7d-4e3f-a1b2-c3d4e5f60718";
        let steps = pod(uid, &node, "10.244.1.7");
        assert_eq!(steps[0].lines, [format!("netns add skiff-pod-{uid}")]);
        assert_eq!(
            steps[1].lines,
            [
                format!("link add skv0f8e1c2a9b7d type veth peer name eth0 netns skiff-pod-{uid}"),
                "link set skv0f8e1c2a9b7d master cbr0 up".to_string()
            ]
        );
        assert!("skv0f8e1c2a9b7d".len() <= 15);
        assert_eq!(
            steps[2].lines,
            [
                "link set lo up",
                "addr add 10.244.1.7/24 dev eth0",
                "link set eth0 up",
                "route add default via 10.244.1.1"
            ]
        );
    }
}
