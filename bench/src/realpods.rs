//! Scenario `realpods`: real pods (`--runtime process`, which needs root)
//! and, in the same run, simulated ones, on 3 nodes. Pods from the
//! built-in HTTP server's image with a readiness probe, created at 20/s:
//! create to Running and to Ready (p50/p99); then 300 pods at once:
//! create to all Running, the server's memory (RSS; it runs the node
//! agents) and the pods' processes' memory (PSS, shared pages counted
//! once), and delete to all gone (the pods'
//! namespaces and processes too).
//!
//! The server runs in mount and PID namespaces of its own (its network
//! namespaces are private to it, and everything it started dies with it);
//! it shares the host's network namespace only for the benchmark to reach
//! its API on loopback, and routes nothing there.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::flow::{create_all, create_at_rate, get, open_watch, read_watch, Created};
use crate::server::{http, rss_mb, skiff_binary, start_wrapped, Running};
use crate::stats::{round3, summary};

const NODES: usize = 3;
const RATE: usize = 20;
const AT_ONCE: usize = 300;

/// Mount and PID namespaces of the server's own.
const PRIVATE: &[&str] = &[
    "unshare",
    "--mount",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "--propagation",
    "private",
    "sh",
    "-c",
    "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns && exec \"$0\" \"$@\"",
];

fn pod(name: &str, probe: bool) -> Value {
    let mut container = json!({"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]});
    if probe {
        container["readinessProbe"] =
            json!({"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 1});
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "realpods"}},
           "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]}})
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// A process's proportional set size: its private memory and its share of
/// what it shares (the containers of built-in images share one binary's
/// pages, which RSS would count once per process).
fn pss_mb(pid: u32) -> Result<f64, String> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).map_err(|e| e.to_string())?;
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or("no Pss")?;
    Ok(kb / 1024.0)
}

/// The processes in the same PID namespace as `pid` (the server's), but
/// for it: the pods' containers; how many, and their PSS in all.
fn pod_processes(pid: u32) -> (usize, f64) {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let Some(own) = ns(&pid.to_string()) else {
        return (0, 0.0);
    };
    let mut count = 0;
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(other) = name.parse::<u32>() else {
            continue;
        };
        if other == pid || ns(&name).as_ref() != Some(&own) {
            continue;
        }
        if let Ok(mb) = pss_mb(other) {
            count += 1;
            total += mb;
        }
    }
    (count, round3(total))
}

/// The server's own pid: the wrapper's child.
fn server_pid(server: &Running) -> u32 {
    let id = server.child.id();
    std::fs::read_to_string(format!("/proc/{id}/task/{id}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .unwrap_or(id)
}

/// Stops the server with SIGTERM, as a user would, so that it removes
/// what it made that outlives it (its pods' cgroups); SIGKILL (the
/// wrapper's drop) after 10 s.
async fn stop(mut server: Running, pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let began = Instant::now();
    while matches!(server.child.try_wait(), Ok(None)) && began.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One runtime's figures.
async fn measure(runtime: &str) -> Result<Value, String> {
    let binary = skiff_binary()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let flags = ["--nodes", "3", "--runtime", runtime];
    let server = start_wrapped(PRIVATE, &binary, dir.path(), &flags)?;
    let client = http(&server.ca)?;
    let began = Instant::now();
    while get(&client, &server, "/api/v1/nodes").await?["items"]
        .as_array()
        .map_or(0, Vec::len)
        < NODES
    {
        if began.elapsed() > Duration::from_secs(30) {
            return Err("the nodes did not register".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pods = "/api/v1/namespaces/default/pods";

    // Startup latency at a steady rate.
    let total = RATE * 5;
    let watch = open_watch(&client, &server, &format!("{pods}?watch=1")).await?;
    let created: Created = Arc::default();
    let bodies = (0..total)
        .map(|i| {
            let name = format!("start-{i}");
            let body = pod(&name, true);
            (name, body)
        })
        .collect();
    let creator = create_at_rate(&client, &server, pods, RATE, bodies, &created);
    let (mut to_running, mut to_ready) = (Vec::new(), Vec::new());
    let (mut running, mut readied) = (HashSet::new(), HashSet::new());
    read_watch(watch, Duration::from_secs(120), |event| {
        let pod = &event["object"];
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(start) = created.lock().expect("times").get(&name).copied() else {
            return true;
        };
        if pod["status"]["phase"] == "Running" && running.insert(name.clone()) {
            to_running.push(start.elapsed());
        }
        if ready(pod) && readied.insert(name) {
            to_ready.push(start.elapsed());
        }
        readied.len() < total
    })
    .await?;
    creator.await.map_err(|e| e.to_string())??;
    delete_all(&client, &server, pods).await?;

    // Many at once.
    let watch = open_watch(&client, &server, &format!("{pods}?watch=1")).await?;
    let bodies: Vec<Value> = (0..AT_ONCE)
        .map(|i| pod(&format!("many-{i}"), false))
        .collect();
    let began = Instant::now();
    create_all(&client, &server, pods, bodies).await?;
    let mut up = HashSet::new();
    read_watch(watch, Duration::from_secs(300), |event| {
        let pod = &event["object"];
        if pod["status"]["phase"] == "Running" {
            up.insert(
                pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        up.len() < AT_ONCE
    })
    .await?;
    let all_running = began.elapsed();
    let pid = server_pid(&server);
    let server_rss = rss_mb(pid)?;
    let (processes, processes_pss) = pod_processes(pid);
    let began = Instant::now();
    delete_all(&client, &server, pods).await?;
    // Gone from the API, and their processes gone from the machine.
    while runtime == "process" && pod_processes(pid).0 > 0 {
        if began.elapsed() > Duration::from_secs(120) {
            return Err("the pods' processes did not go".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let removed = began.elapsed();
    stop(server, pid).await;
    Ok(json!({
        "startup_at_20_per_s": {
            "pods": total,
            "create_to_running": summary(to_running),
            "create_to_ready": summary(to_ready),
        },
        "at_once": {
            "pods": AT_ONCE,
            "create_to_all_running_s": round3(all_running.as_secs_f64()),
            "server_rss_mb": server_rss,
            "pod_processes": processes,
            "pod_processes_pss_mb": processes_pss,
            "delete_to_all_gone_s": round3(removed.as_secs_f64()),
        },
    }))
}

/// Deletes every pod and waits until the API lists none.
async fn delete_all(client: &reqwest::Client, server: &Running, pods: &str) -> Result<(), String> {
    let response = client
        .delete(format!("{}{pods}", server.url))
        .bearer_auth(&server.token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("delete answered {}", response.status()));
    }
    let began = Instant::now();
    while get(client, server, pods).await?["items"]
        .as_array()
        .map_or(0, Vec::len)
        > 0
    {
        if began.elapsed() > Duration::from_secs(120) {
            return Err("the pods were not deleted in 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Both runtimes, the real one first.
pub async fn run() -> Result<Value, String> {
    eprintln!("realpods: the process runtime");
    let process = measure("process").await?;
    eprintln!("realpods: the sim runtime");
    let sim = measure("sim").await?;
    Ok(json!({"scenario": "realpods", "nodes": NODES, "process": process, "sim": sim}))
}
