//! Scenario `proxy-ipvs`: the IPVS mode's proxy (skiff-proxy's own code:
//! change tracker, rules, the IPVS plan over generic netlink, the
//! `kube-ipvs0` link, the small nftables table) programming a network
//! namespace the benchmark makes (needs root and a kernel with IPVS: the
//! VM harness's, `vm::proxy_ipvs_bench_in_the_vm`): a full sync of 10,000
//! Services of 5 endpoints each, then single endpoint changes on top of
//! them, from the EndpointSlice event recorded to the kernel having it;
//! the resident memory the proxy's state adds; and the peer, `ipvsadm -R`
//! restoring what `ipvsadm -Sn` saves of the proxy's rules into a fresh
//! namespace, timed in the same run. Where the IPVS family does not
//! answer, it says so in its one line instead of failing, since most
//! kernels a benchmark runs on (this machine's, CI's) have no IPVS.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skiff_proxy::ipvs::Ipvs;
use skiff_proxy::model::Node;
use skiff_proxy::tracker::State;

use crate::proxy::{rss_mb, service, slice};
use crate::stats::{round3, summary};

/// A network namespace of the benchmark's, removed when dropped (also
/// when the scenario fails half-way).
struct Namespace(String);

impl Namespace {
    fn add(name: String) -> Result<Namespace, String> {
        let made = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map_err(|e| format!("proxy-ipvs needs iproute2: {e}"))?;
        match made.success() {
            true => Ok(Namespace(name)),
            false => Err(format!("proxy-ipvs needs root: ip netns add {name} failed")),
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `ipvsadm ARGS` in `namespace`, fed `input`: its standard output.
fn ipvsadm(namespace: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", namespace, "ipvsadm"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ipvsadm: {e}"))?;
    let mut stdin = child.stdin.take().expect("ipvsadm's stdin");
    if let Some(text) = input {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    drop(stdin);
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        false => Err(format!(
            "ipvsadm {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// The peer: `ipvsadm -R` restoring, into a fresh namespace, the rules
/// `ipvsadm -Sn` saves of what the proxy programmed in `namespace`; the
/// time of the restore alone, and how many rules it held.
fn restore(namespace: &str) -> Result<(Duration, usize), String> {
    let saved = ipvsadm(namespace, &["-Sn"], None)?;
    let fresh = Namespace::add(format!("{namespace}-restore"))?;
    let started = Instant::now();
    ipvsadm(&fresh.0, &["-R"], Some(&saved))?;
    let took = started.elapsed();
    let restored = ipvsadm(&fresh.0, &["-Sn"], None)?;
    if restored.lines().count() != saved.lines().count() {
        return Err(format!(
            "ipvsadm -R restored {} of {} rules",
            restored.lines().count(),
            saved.lines().count()
        ));
    }
    Ok((took, saved.lines().count()))
}

/// Runs the scenario with `count` Services and `changes` endpoint changes.
pub async fn run(count: usize, changes: usize) -> Result<Value, String> {
    let namespace = Namespace::add(format!("skiff-bench-ipvs-{}", std::process::id()))?;
    if !skiff_proxy::ipvs::available(Some(namespace.0.clone())).await {
        return Ok(json!({
            "scenario": "proxy-ipvs",
            "mode": "ipvs",
            "services": count,
            "skipped": "this kernel's IPVS generic netlink family does not answer (no IPVS): \
                        run it in the VM, cargo nextest run -p skiff --test e2e \
                        --run-ignored only vm::proxy_ipvs_bench_in_the_vm",
        }));
    }
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
    let mut ipvs = Ipvs::new(Some(namespace.0.clone()), "rr".into());
    eprintln!("proxy-ipvs: full sync of {count} Services x 5 endpoints");
    let started = Instant::now();
    let touched = state.apply(&node);
    let computed = started.elapsed();
    let operations = ipvs.sync(&state.rules, &touched, true).await?;
    let full_sync = started.elapsed();
    let rss = rss_mb();
    eprintln!("proxy-ipvs: ipvsadm -R of the same rules");
    let (restore, saved_rules) = restore(&namespace.0)?;
    eprintln!("proxy-ipvs: {changes} endpoint changes on top");
    let mut latencies: Vec<Duration> = Vec::new();
    for change in 0..changes {
        let i = change * (count / changes.max(1)).max(1) % count;
        let (old, new) = (slice(i, 0), slice(i, 1));
        let started = Instant::now();
        state.record_slice(Some(&old), Some(&new));
        let touched: BTreeSet<_> = state.apply(&node);
        ipvs.sync(&state.rules, &touched, false).await?;
        latencies.push(started.elapsed());
        state.record_slice(Some(&new), Some(&old));
        let touched = state.apply(&node);
        ipvs.sync(&state.rules, &touched, false).await?;
    }
    let rss_after_changes = rss_mb();
    Ok(json!({
        "scenario": "proxy-ipvs",
        "mode": "ipvs",
        "services": count,
        "endpoints_per_service": 5,
        "full_sync_s": round3(full_sync.as_secs_f64()),
        "full_sync_rules_computed_ms": round3(computed.as_secs_f64() * 1e3),
        "full_sync_operations": operations,
        "ipvsadm_restore_same_rules_s": round3(restore.as_secs_f64()),
        "ipvsadm_saved_rules": saved_rules,
        "full_sync_to_ipvsadm_restore": round3(full_sync.as_secs_f64() / restore.as_secs_f64().max(1e-9)),
        "endpoint_change": summary(latencies),
        "rss_mb_before": before,
        "rss_mb_after_full_sync": rss,
        "rss_mb_after_changes": rss_after_changes,
        "targets": {"full_sync_s": 2, "full_sync_to_ipvsadm_restore": 1.5,
                    "endpoint_change_ms": 10, "rss_mb": 50},
    }))
}
