//! Scenarios `startup` and `api`: the real `skiff` binary (built by
//! `cargo build --release -p skiff`, found beside this benchmark's binary)
//! started on loopback, measured from outside as a user would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stats::{collect, round3, summary};

const STARTS: usize = 10;
const IDLE: Duration = Duration::from_secs(10);
const CLIENT_COUNTS: [usize; 2] = [16, 64];

/// A running server; killed when dropped.
pub struct Running {
    pub child: Child,
    pub url: String,
    /// Where its cluster DNS answers (UDP and TCP).
    pub dns: std::net::SocketAddr,
    pub token: String,
    pub ca: Vec<u8>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn skiff_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name("skiff");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: run `cargo build --release -p skiff` first",
            path.display()
        ))
    }
}

/// Starts `skiff server` on a free port and returns once it printed its
/// ready line.
fn start(binary: &Path, data_dir: &Path) -> Result<Running, String> {
    start_with(binary, data_dir, &[])
}

/// [`start`] with more `skiff server` flags.
pub fn start_with(binary: &Path, data_dir: &Path, flags: &[&str]) -> Result<Running, String> {
    start_wrapped(&[], binary, data_dir, flags)
}

/// [`start_with`] under a `wrapper` command (its argv, which ends by
/// running the rest: `unshare ... --`).
pub fn start_wrapped(
    wrapper: &[&str],
    binary: &Path,
    data_dir: &Path,
    flags: &[&str],
) -> Result<Running, String> {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    let mut child = command
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--dns-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let url = line
        .split_whitespace()
        .nth(4)
        .ok_or_else(|| format!("no URL in {line:?}"))?
        .to_owned();
    // "...; dns: ADDRESS; kubeconfig: PATH"
    let dns = line
        .split("dns: ")
        .nth(1)
        .and_then(|rest| rest.split(';').next()?.parse().ok())
        .ok_or_else(|| format!("no DNS address in {line:?}"))?;
    let token = std::fs::read_to_string(data_dir.join("pki/token")).map_err(|e| e.to_string())?;
    let ca = std::fs::read(data_dir.join("pki/ca.crt")).map_err(|e| e.to_string())?;
    Ok(Running {
        child,
        url,
        dns,
        token: token.trim().to_owned(),
        ca,
    })
}

pub fn http(ca: &[u8]) -> Result<reqwest::Client, String> {
    let ca = reqwest::Certificate::from_pem(ca).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .pool_max_idle_per_host(128)
        // One keep-alive HTTP/1.1 connection per client, as kube-rs and
        // most controllers use. (Over HTTP/2 through one connection,
        // reqwest's h2 client sends GOAWAY too_many_internal_resets at 16
        // concurrent streams; not yet understood, see the closing notes.)
        .http1_only()
        .build()
        .map_err(|e| e.to_string())
}

pub fn rss_mb(pid: u32) -> Result<f64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or("no VmRSS")?;
    Ok(round3(kb / 1024.0))
}

/// From exec to /readyz answering 200, on an existing data directory
/// (median of ten cold starts), and the resident memory after 10 s idle.
pub async fn startup() -> Result<Value, String> {
    let binary = skiff_binary()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    drop(start(&binary, dir.path())?); // the first start makes the data directory
    let mut times = Vec::new();
    for _ in 0..STARTS {
        let began = Instant::now();
        let server = start(&binary, dir.path())?;
        let client = http(&server.ca)?;
        loop {
            let ready = client.get(format!("{}/readyz", server.url)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
            if began.elapsed() > Duration::from_secs(30) {
                return Err("/readyz never answered 200".into());
            }
        }
        times.push(began.elapsed());
    }
    let server = start(&binary, dir.path())?;
    tokio::time::sleep(IDLE).await;
    let rss = rss_mb(server.child.id())?;
    let mut figures = summary(times);
    figures["starts"] = json!(STARTS);
    Ok(json!({ "scenario": "startup", "exec_to_readyz": figures, "idle_rss_mb_after_10s": rss }))
}

/// Durable creates over HTTPS with keep-alive from 16 and 64 clients.
pub async fn api(duration: Duration) -> Result<Value, String> {
    let binary = skiff_binary()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = start(&binary, dir.path())?;
    let client = http(&server.ca)?;
    let mut results = serde_json::Map::new();
    for clients in CLIENT_COUNTS {
        eprintln!("api: {clients} clients creating config maps");
        let url = Arc::new(format!(
            "{}/api/v1/namespaces/default/configmaps",
            server.url
        ));
        let deadline = Instant::now() + duration;
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (client, url, token) = (client.clone(), url.clone(), server.token.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    for n in 0u64.. {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let body = json!({"metadata": {"name": format!("c{clients}-{c}-{n}")}, "data": {"k": "v".repeat(512)}});
                        let began = Instant::now();
                        let response = client.post(url.as_str()).bearer_auth(&token).header("content-type", "application/json").body(body.to_string()).send().await.map_err(|e| e.to_string())?;
                        if response.status() != 201 {
                            return Err(format!("create answered {}", response.status()));
                        }
                        latencies.push(began.elapsed());
                    }
                    Ok::<_, String>(latencies)
                })
            })
            .collect();
        let figures = collect(tasks, started, "creates_per_s").await?;
        results.insert(clients.to_string(), figures);
    }
    Ok(
        json!({ "scenario": "api", "seconds_per_phase": duration.as_secs(), "https_keepalive_creates": results }),
    )
}
