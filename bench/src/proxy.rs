//! Scenario `proxy`: the nftables mode's proxy (skiff-proxy's own code:
//! change tracker, rules, table diff, `nft -f -`) programming a network
//! namespace the benchmark makes (needs root and nft): a full sync of
//! 10,000 Services of 5 endpoints each, then single endpoint changes on
//! top of them, from the EndpointSlice event recorded to `nft` having
//! applied it; and the resident memory the proxy's state adds.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};
use skiff_proxy::model::Node;
use skiff_proxy::run::Nft;
use skiff_proxy::tracker::State;

use crate::stats::{round3, summary};

pub(crate) fn service(i: usize) -> Service {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 16, 0)) + i as u32);
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("svc-{i}")},
        "spec": {"clusterIP": ip.to_string(), "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .expect("a Service")
}

pub(crate) fn slice(i: usize, generation: usize) -> EndpointSlice {
    let endpoints: Vec<Value> = (0..5)
        .map(|k| {
            let n = (i * 5 + k + generation * 7) as u32 % 65_000;
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 10)) + n);
            json!({"addresses": [ip.to_string()], "conditions": {"ready": true}, "nodeName": "bench"})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("svc-{i}-abcde"),
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .expect("an EndpointSlice")
}

pub(crate) fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    round3(kb / 1024.0)
}

/// The namespace, removed when dropped.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

fn nft(namespace: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", namespace, "nft"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        false => Err(format!("nft: {}", String::from_utf8_lossy(&output.stderr))),
    }
}

/// The peer: `nft -f` loading the very ruleset the proxy wrote, as one
/// file (what a restore of a saved ruleset costs), timed; the proxy's
/// table is back as it was afterwards.
fn restore(namespace: &str) -> Result<Duration, String> {
    let saved = nft(
        namespace,
        &["list", "table", "ip", skiff_proxy::nftables::TABLE],
        None,
    )?;
    let script = format!("delete table ip {}\n{saved}", skiff_proxy::nftables::TABLE);
    let started = Instant::now();
    nft(namespace, &["-f", "-"], Some(&script))?;
    Ok(started.elapsed())
}

/// Runs the scenario with `count` Services and `changes` endpoint changes.
pub async fn run(count: usize, changes: usize) -> Result<Value, String> {
    let name = format!("skiff-bench-proxy-{}", std::process::id());
    let made = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .map_err(|e| format!("proxy needs iproute2: {e}"))?;
    if !made.success() {
        return Err("proxy needs root: ip netns add failed".into());
    }
    let namespace = Namespace(name);
    let node = Node {
        name: "bench".into(),
        addresses: vec![Ipv4Addr::new(172, 18, 0, 2)],
    };
    let before = rss_mb();
    let mut state = State::default();
    for i in 0..count {
        state.record_service(None, Some(&service(i)));
        state.record_slice(None, Some(&slice(i, 0)));
    }
    let mut nft = Nft::new(Some(namespace.0.clone()));
    eprintln!("proxy: full sync of {count} Services x 5 endpoints");
    let started = Instant::now();
    let touched = state.apply(&node);
    let computed = started.elapsed();
    let operations = nft.sync(&state.rules, &touched, true).await?;
    let full_sync = started.elapsed();
    let rss = rss_mb();
    let restore = restore(&namespace.0)?;
    eprintln!("proxy: {changes} endpoint changes on top");
    let mut latencies: Vec<Duration> = Vec::new();
    for change in 0..changes {
        let i = change * (count / changes.max(1)).max(1) % count;
        let (old, new) = (slice(i, 0), slice(i, 1));
        let started = Instant::now();
        state.record_slice(Some(&old), Some(&new));
        let touched: BTreeSet<_> = state.apply(&node);
        nft.sync(&state.rules, &touched, false).await?;
        latencies.push(started.elapsed());
        state.record_slice(Some(&new), Some(&old));
        let touched = state.apply(&node);
        nft.sync(&state.rules, &touched, false).await?;
    }
    Ok(json!({
        "scenario": "proxy",
        "mode": "nftables",
        "services": count,
        "endpoints_per_service": 5,
        "full_sync_s": round3(full_sync.as_secs_f64()),
        "full_sync_rules_computed_ms": round3(computed.as_secs_f64() * 1e3),
        "full_sync_operations": operations,
        "nft_restore_same_ruleset_s": round3(restore.as_secs_f64()),
        "endpoint_change": summary(latencies),
        "rss_mb_before": before,
        "rss_mb_after_full_sync": rss,
        "peers": {"kube_proxy_nftables_10000_services_s": 540, "kube_proxy_nftables_one_change_ms": 141,
                  "source": "kubernetes PR 126013 (figures quoted, not run here)"},
    }))
}
