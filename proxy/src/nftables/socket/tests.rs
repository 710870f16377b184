//! The netlink writer on the real kernel, against the text path: the same
//! operations through `nft -f` in one fresh network namespace and through
//! a [`Connection`] in another must leave tables that `nft list` prints
//! the same. Where namespaces or nft cannot be had (not root, say) the
//! tests are skipped, except in CI.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::model::{Address, Backend, PortName, PortRules, Protocol, Traffic, Virtual};
use crate::nftables::tests::text;
use crate::nftables::{base, diff, render, transactions, Rule, Verdict, TABLE};
use crate::run::nft;

/// A named network namespace of the test's own, deleted when dropped
/// (a failing test included).
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// A fresh namespace, or None (and the test skipped) where `ip netns`
/// cannot make one; CI, which runs as root, fails instead.
fn namespace(tag: &str) -> Option<Namespace> {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "skiff-nft-{}-{tag}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    let made = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .output();
    match made {
        Ok(output) if output.status.success() => Some(Namespace(name)),
        other => {
            let why = match other {
                Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
                Err(e) => format!("no ip(8): {e}"),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs ip netns and nft as root: {why}"
            );
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// The table's base written through nft, as a sync starting afresh does.
async fn with_base(namespace: &Namespace) {
    nft(Some(&namespace.0), &transactions(&base()).concat())
        .await
        .unwrap();
}

/// `nft list table`, with each set's or map's elements in order: the
/// kernel lists a hash set's elements in the order of a hash seeded at
/// random per set, so two equal tables may list them differently.
async fn listing(namespace: &Namespace) -> String {
    let listed = nft(Some(&namespace.0), &format!("list table ip {TABLE}\n"))
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut lines = listed.lines();
    while let Some(line) = lines.next() {
        let Some((head, rest)) = line.split_once("elements = {") else {
            out.push(line.to_owned());
            continue;
        };
        let mut elements = rest.to_owned();
        while !elements.contains('}') {
            elements.push_str(lines.next().unwrap_or("}"));
        }
        let inside = elements.split('}').next().unwrap_or_default();
        let mut items: Vec<&str> = inside.split(',').map(str::trim).collect();
        items.sort_unstable();
        out.push(format!("{head}elements = {{ {} }}", items.join(", ")));
    }
    out.join("\n")
}

fn port(service: &str, protocol: Protocol) -> PortName {
    PortName {
        service: ("default".into(), service.into()),
        port: "p".into(),
        protocol,
    }
}

/// A Service port on the ClusterIP `ip` (and a node port on 172.18.0.2,
/// masqueraded, with `node_port`), its endpoints 10.244.1.N.
fn service(
    name: &str,
    ip: [u8; 4],
    protocol: Protocol,
    node_port: Option<u16>,
    affinity: Option<u32>,
    endpoints: &[u8],
) -> PortRules {
    let backends: Vec<Backend> = endpoints
        .iter()
        .map(|n| Backend {
            ip: Ipv4Addr::new(10, 244, 1, *n),
            port: 8080,
        })
        .collect();
    let virtual_ = |traffic| Virtual {
        service: port(name, protocol),
        traffic,
        affinity,
        masquerade: traffic == Traffic::External,
        backends: backends.clone(),
    };
    let mut virtuals = BTreeMap::new();
    virtuals.insert(
        Address {
            ip: Ipv4Addr::from(ip),
            port: 80,
            protocol,
        },
        virtual_(Traffic::Internal),
    );
    if let Some(node_port) = node_port {
        virtuals.insert(
            Address {
                ip: Ipv4Addr::new(172, 18, 0, 2),
                port: node_port,
                protocol,
            },
            virtual_(Traffic::External),
        );
    }
    PortRules {
        virtuals,
        health_check: None,
    }
}

/// The cluster at each step: web (affinity, a node port) with these
/// endpoints, api (one endpoint, a node port) and dns (UDP, none).
fn cluster(web: &[u8]) -> Vec<PortRules> {
    vec![
        service(
            "web",
            [10, 96, 0, 20],
            Protocol::Tcp,
            Some(30080),
            Some(10800),
            web,
        ),
        service(
            "api",
            [10, 96, 0, 30],
            Protocol::Tcp,
            Some(30443),
            None,
            &[9],
        ),
        service("dns", [10, 96, 0, 10], Protocol::Udp, None, None, &[]),
    ]
}

/// Each step's operations: port by port, what the last step left to
/// what this one wants.
fn changes(old: Option<&[PortRules]>, new: &[PortRules]) -> Vec<Op> {
    new.iter()
        .enumerate()
        .flat_map(|(i, port)| {
            let before = old.map(|o| render(&o[i])).unwrap_or_default();
            diff(&before, &render(port))
        })
        .collect()
}

#[tokio::test]
async fn netlink_leaves_the_table_nft_leaves_at_every_step() {
    let (Some(by_text), Some(by_netlink)) = (namespace("text"), namespace("netlink")) else {
        return;
    };
    with_base(&by_text).await;
    with_base(&by_netlink).await;
    let mut connection = Connection::open(Some(&by_netlink.0)).await.unwrap();
    let steps = [
        ("a first sync", cluster(&[3, 4])),
        ("an endpoint added", cluster(&[3, 4, 5])),
        ("one removed", cluster(&[4, 5])),
        ("the last one removed", cluster(&[])),
    ];
    let mut last: Option<&[PortRules]> = None;
    for (step, ports) in &steps {
        let ops = changes(last, ports);
        assert!(!ops.is_empty(), "{step}");
        nft(Some(&by_text.0), &transactions(&text(&ops)).concat())
            .await
            .unwrap_or_else(|e| panic!("{step}: nft: {e}"));
        connection
            .apply(&ops)
            .unwrap_or_else(|e| panic!("{step}: netlink: {e}"));
        let (expected, ours) = (listing(&by_text).await, listing(&by_netlink).await);
        assert_eq!(ours, expected, "{step}");
        last = Some(ports);
    }
    // The last step deleted web's chains and sets: none is left.
    let table = listing(&by_netlink).await;
    assert!(!table.contains("web"), "{table}");
    assert!(table.contains("ep-default/api/tcp/p__10.244.1.9/8080"));
    assert!(table.contains("10.96.0.20 . tcp . 80"), "no endpoints");
}

#[tokio::test]
async fn a_refused_operation_is_named_and_its_batch_leaves_nothing() {
    let Some(namespace) = namespace("refused") else {
        return;
    };
    with_base(&namespace).await;
    let mut connection = Connection::open(Some(&namespace.0)).await.unwrap();
    let ops = [
        Op::AddChain("svc-fine".into()),
        Op::AddRule {
            chain: "svc-missing".into(),
            rule: Rule::Verdict(Verdict::Goto("svc-fine".into())),
        },
    ];
    let error = connection.apply(&ops).unwrap_err();
    assert_eq!(
        error,
        "nftables refused add rule ip skiff-proxy svc-missing goto svc-fine: the table, the chain, or a chain or set the rule names does not exist (No such file or directory (os error 2))"
    );
    assert!(!listing(&namespace).await.contains("svc-fine"));
    // The socket is still good for the next batch.
    connection.apply(&ops[..1]).unwrap();
    assert!(listing(&namespace).await.contains("svc-fine"));
}

#[tokio::test]
async fn a_batch_of_the_most_operations_fits_the_socket_buffers() {
    let Some(namespace) = namespace("full") else {
        return;
    };
    with_base(&namespace).await;
    let mut connection = Connection::open(Some(&namespace.0)).await.unwrap();
    let long = "x".repeat(200);
    let mut ops: Vec<Op> = (0..crate::nftables::MAX_OPERATIONS / 2)
        .map(|i| Op::AddChain(format!("ep-{long}-{i}")))
        .collect();
    ops.extend(
        (0..crate::nftables::MAX_OPERATIONS / 2).map(|i| Op::AddRule {
            chain: format!("ep-{long}-{i}"),
            rule: Rule::Dnat {
                protocol: Protocol::Tcp,
                to: Backend {
                    ip: Ipv4Addr::new(10, 244, 1, 1),
                    port: 8080,
                },
            },
        }),
    );
    connection.apply(&ops).unwrap();
    // And the same again: each one exists, nothing is refused.
    connection
        .apply(&ops[..crate::nftables::MAX_OPERATIONS / 2])
        .unwrap();
}
