//! Scenario `proxy-traffic`: requests through a Service in each of the
//! proxy's modes, beside straight to the pod, in two network namespaces
//! the benchmark makes (needs root): a "node" holding the client and the
//! proxy, and a "pod" behind a veth answering 1 KiB HTTP responses. Each
//! mode is programmed by skiff-proxy's own writer; the client keeps
//! [`CONNECTIONS`] keep-alive connections busy for a bounded time and
//! counts requests per second and their latency.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skiff_proxy::model::{Address, Backend, PortName, PortRules, Protocol, Traffic, Virtual};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stats::{collect, round3};

/// Keep-alive connections at once.
const CONNECTIONS: usize = 8;
/// The body of every response.
const BODY: usize = 1024;
/// Where the pod answers.
const POD: ([u8; 4], u16) = ([10, 244, 0, 10], 8080);
/// The Service's ClusterIP and port.
const SERVICE: ([u8; 4], u16) = ([10, 96, 0, 100], 80);

/// The two namespaces, removed when dropped.
struct Namespaces {
    node: String,
    pod: String,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in [&self.node, &self.pod] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", name])
                .status();
        }
    }
}

/// `ip -batch` of `lines` in the named namespace (None: this one).
fn ip(namespace: Option<&str>, lines: &[String]) -> Result<(), String> {
    let mut command = std::process::Command::new("ip");
    if let Some(namespace) = namespace {
        command.args(["-n", namespace]);
    }
    let status = command
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all((lines.join("\n") + "\n").as_bytes())?;
            child.wait()
        })
        .map_err(|e| format!("proxy-traffic needs iproute2: {e}"))?;
    match status.success() {
        true => Ok(()),
        false => Err("proxy-traffic needs root: ip -batch failed".into()),
    }
}

/// The node and the pod, wired by a veth.
fn wire() -> Result<Namespaces, String> {
    let pid = std::process::id();
    let made = Namespaces {
        node: format!("skiff-bench-traffic-{pid}-node"),
        pod: format!("skiff-bench-traffic-{pid}-pod"),
    };
    let (node, pod) = (&made.node, &made.pod);
    let [a, b, c, d] = POD.0;
    ip(
        None,
        &[format!("netns add {node}"), format!("netns add {pod}")],
    )?;
    ip(
        Some(node),
        &[
            "link set lo up".into(),
            format!("link add v0 type veth peer name eth0 netns {pod}"),
            "addr add 10.244.0.1/24 dev v0".into(),
            "link set v0 up".into(),
            // A node's default route: a ClusterIP must route before the
            // output hook's DNAT turns it into the pod.
            "route add default via 10.244.0.10".into(),
        ],
    )?;
    ip(
        Some(pod),
        &[
            "link set lo up".into(),
            format!("addr add {a}.{b}.{c}.{d}/24 dev eth0"),
            "link set eth0 up".into(),
            "route add default via 10.244.0.1".into(),
        ],
    )?;
    Ok(made)
}

/// The Service's one port, leading to the pod.
fn rules() -> BTreeMap<PortName, PortRules> {
    let name = PortName {
        service: ("default".into(), "web".into()),
        port: "http".into(),
        protocol: Protocol::Tcp,
    };
    let address = Address {
        ip: Ipv4Addr::from(SERVICE.0),
        port: SERVICE.1,
        protocol: Protocol::Tcp,
    };
    let virtual_server = Virtual {
        service: name.clone(),
        traffic: Traffic::Internal,
        affinity: None,
        masquerade: false,
        backends: vec![Backend {
            ip: Ipv4Addr::from(POD.0),
            port: POD.1,
        }],
    };
    let rules = PortRules {
        virtuals: BTreeMap::from([(address, virtual_server)]),
        health_check: None,
    };
    BTreeMap::from([(name, rules)])
}

/// The pod's HTTP server: each request on a connection gets a 1 KiB
/// response.
async fn serve(namespace: &str) -> Result<(), String> {
    let listener = skiff_proxy::netns::within_named(Some(namespace), || {
        let listener = std::net::TcpListener::bind(SocketAddr::from(POD))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .await
    .map_err(|e| format!("the pod cannot listen: {e}"))?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nContent-Type: text/plain\r\n\r\n{}",
        "x".repeat(BODY)
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut buffer = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    while let Some(end) = find(&buffer, b"\r\n\r\n") {
                        buffer.drain(..end + 4);
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One keep-alive connection from the node to `target`, asking until
/// `until`; the latency of each request.
async fn client(
    namespace: String,
    target: SocketAddr,
    until: Instant,
) -> Result<Vec<Duration>, String> {
    let stream = skiff_proxy::netns::within_named(Some(&namespace), move || {
        let stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    })
    .await
    .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let mut stream = tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let request = b"GET / HTTP/1.1\r\nHost: web\r\n\r\n";
    let mut latencies = Vec::new();
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while Instant::now() < until {
        let started = Instant::now();
        stream.write_all(request).await.map_err(|e| e.to_string())?;
        // Headers, then the body they announce.
        let whole = loop {
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                if buffer.len() >= end + 4 + BODY {
                    break end + 4 + BODY;
                }
            }
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("{target} closed the connection"));
            }
            buffer.extend_from_slice(&chunk[..n]);
        };
        buffer.drain(..whole);
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// Requests through `target` for `seconds`: requests/s, p50 and p99.
async fn load(namespace: &str, target: SocketAddr, seconds: u64) -> Result<Value, String> {
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks = (0..CONNECTIONS)
        .map(|_| tokio::spawn(client(namespace.to_owned(), target, until)))
        .collect();
    collect(tasks, started, "requests_per_s").await
}

/// Runs the scenario, each mode for `seconds`.
pub async fn run(seconds: u64) -> Result<Value, String> {
    let namespaces = wire()?;
    serve(&namespaces.pod).await?;
    let node = namespaces.node.clone();
    let service = SocketAddr::from(SERVICE);
    let rules = rules();
    let none = BTreeSet::new();
    eprintln!("proxy-traffic: straight to the pod");
    let direct = load(&node, SocketAddr::from(POD), seconds).await?;
    eprintln!("proxy-traffic: nftables");
    let mut nft = skiff_proxy::run::Nft::new(Some(node.clone()));
    nft.sync(&rules, &none, true).await?;
    let nftables = load(&node, service, seconds).await?;
    eprintln!("proxy-traffic: userspace");
    let mut userspace = skiff_proxy::userspace::Userspace::new(
        Some(node.clone()),
        vec![Ipv4Addr::new(172, 18, 0, 2)],
    )
    .await?;
    userspace.sync(&rules, true).await?;
    let user = load(&node, service, seconds).await?;
    drop(userspace);
    let ipvs = match skiff_proxy::ipvs::available(Some(node.clone())).await {
        false => json!("this kernel has no IPVS (run it in the VM harness)"),
        true => {
            eprintln!("proxy-traffic: ipvs");
            let mut ipvs = skiff_proxy::ipvs::Ipvs::new(Some(node.clone()), "rr".into());
            ipvs.sync(&rules, &none, true).await?;
            load(&node, service, seconds).await?
        }
    };
    let rate = |v: &Value| v["requests_per_s"].as_f64().unwrap_or(0.0);
    let p99 = |v: &Value| v["p99_ms"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "scenario": "proxy-traffic",
        "connections": CONNECTIONS,
        "response_bytes": BODY,
        "seconds_per_mode": seconds,
        "direct": direct,
        "nftables": nftables,
        "userspace": user,
        "ipvs": ipvs,
        "userspace_to_nftables_requests": round3(rate(&user) / rate(&nftables).max(1.0)),
        "added_p99_ms": {"nftables": round3(p99(&nftables) - p99(&direct)),
                         "userspace": round3(p99(&user) - p99(&direct))},
    }))
}
