//! Probes for real, from the node into the pod's network as a kubelet's:
//! `httpGet` (a status from 200 to 399 passes), `tcpSocket` (a connection
//! passes), `exec` (exit code 0 passes, run inside the container's
//! namespaces) and `grpc` (the standard health service's SERVING). The
//! timing and thresholds are upstream's ([`Prober`]); what a result means
//! for the pod is decided by the runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::netns;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Holds the others back until it passes once.
    Startup,
    /// Its failure restarts the container.
    Liveness,
    /// Its result is the container's readiness.
    Readiness,
}

impl Kind {
    /// As events name it: `Readiness probe failed: ...`.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// Where a probe reaches the container.
#[derive(Debug, Clone)]
pub struct Target {
    /// The network namespace probes connect from (the node's).
    pub from: PathBuf,
    /// The pod's IP.
    pub ip: String,
    /// The container's main process, whose namespaces `exec` enters.
    pub pid: i32,
    /// The container's environment, for `exec`.
    pub env: Vec<(String, String)>,
    /// The shim to run `exec` probes with.
    pub exe: PathBuf,
    /// Where the shim's specs are written for `exec` probes.
    pub dir: PathBuf,
}

/// A probe's settings, defaulted as upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Before the first probe.
    pub initial_delay: Duration,
    /// Between probes.
    pub period: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Consecutive passes that make it pass.
    pub success_threshold: u32,
    /// Consecutive failures that make it fail.
    pub failure_threshold: u32,
}

impl Timing {
    /// The timing of `probe`: upstream's defaults are 0 s, 10 s, 1 s, 1
    /// and 3.
    pub fn of(probe: &Probe) -> Timing {
        let seconds =
            |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
        Timing {
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// The thresholds of a probe, without I/O: fed each result, it says when
/// the probe's verdict changes.
#[derive(Debug, Clone)]
pub struct Prober {
    timing: Timing,
    verdict: Option<bool>,
    run: (bool, u32),
}

impl Prober {
    /// A prober with no verdict yet.
    pub fn new(timing: Timing) -> Prober {
        Prober {
            timing,
            verdict: None,
            run: (false, 0),
        }
    }

    /// Takes one result; returns the new verdict when it changes.
    pub fn record(&mut self, passed: bool) -> Option<bool> {
        self.run = match self.run {
            (last, count) if last == passed => (passed, count.saturating_add(1)),
            _ => (passed, 1),
        };
        let needed = match passed {
            true => self.timing.success_threshold,
            false => self.timing.failure_threshold,
        };
        (self.run.1 >= needed && self.verdict != Some(passed)).then(|| {
            self.verdict = Some(passed);
            passed
        })
    }
}

/// A named or numbered port of `container`.
fn port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("couldn't find port: {name} in {}", container.name)),
    }
}

/// Runs `probe` once against `target`: Ok, or why it failed.
pub async fn check(probe: &Probe, container: &Container, target: &Target) -> Result<(), String> {
    let timeout = Timing::of(probe).timeout;
    let address = |host: Option<&str>, port: u16| -> Result<SocketAddr, String> {
        let host = host.filter(|h| !h.is_empty()).unwrap_or(&target.ip);
        format!("{host}:{port}")
            .parse()
            .map_err(|_| format!("invalid address {host}:{port}"))
    };
    if let Some(http) = &probe.http_get {
        let address = address(http.host.as_deref(), port(container, &http.port)?)?;
        let path = http.path.as_deref().unwrap_or("/");
        let url = format!("http://{address}{path}");
        let status = tokio::time::timeout(timeout, http_status(target, address, path, http))
            .await
            .map_err(|_| {
                format!("Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")
            })?
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        return match status {
            200..=399 => Ok(()),
            code => Err(format!("HTTP probe failed with statuscode: {code}")),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let address = address(tcp.host.as_deref(), port(container, &tcp.port)?)?;
        return netns::connect(target.from.clone(), address, timeout)
            .await
            .map(drop)
            .map_err(|e| format!("dial tcp {address}: connect: {}", plain(&e)));
    }
    if let Some(exec) = &probe.exec {
        return run_exec(exec.command.clone().unwrap_or_default(), target, timeout).await;
    }
    if let Some(grpc) = &probe.grpc {
        let port = u16::try_from(grpc.port).map_err(|_| format!("invalid port {}", grpc.port))?;
        let address = address(None, port)?;
        let service = grpc.service.clone().unwrap_or_default();
        return tokio::time::timeout(timeout, super::grpc::health(target, address, &service))
            .await
            .map_err(|_| {
                format!(
                    "timeout: health rpc did not complete within {}s",
                    timeout.as_secs()
                )
            })?;
    }
    Err("the probe names no handler".into())
}

/// An I/O error as Go's dialer words it.
fn plain(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => error.to_string(),
    }
}

/// The status code of a GET from inside the node.
async fn http_status(
    target: &Target,
    address: SocketAddr,
    path: &str,
    http: &k8s_openapi::api::core::v1::HTTPGetAction,
) -> Result<u16, String> {
    let mut stream = netns::connect(target.from.clone(), address, Duration::from_secs(10))
        .await
        .map_err(|e| format!("dial tcp {address}: connect: {}", plain(&e)))?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for header in http.http_headers.iter().flatten() {
        request.push_str(&format!("{}: {}\r\n", header.name, header.value));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "malformed HTTP response".to_string())
}

/// Runs an `exec` probe's command in the container.
async fn run_exec(command: Vec<String>, target: &Target, timeout: Duration) -> Result<(), String> {
    let spec = super::shim::Spec {
        argv: command.clone(),
        env: target.env.clone(),
        join: Some(target.pid),
        ..Default::default()
    };
    let path = super::shim::write_once(&target.dir, &spec)?;
    let child = tokio::process::Command::new(&target.exe)
        .arg(super::SHIM)
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, child)
        .await
        .map_err(|_| format!("command {command:?} timed out"))?
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        return Ok(());
    }
    let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(said.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn verdicts_change_after_their_thresholds() {
        let mut p = Prober::new(timing(2, 3));
        assert_eq!(p.record(true), None);
        assert_eq!(p.record(true), Some(true));
        assert_eq!(p.record(true), None);
        assert_eq!(p.record(false), None);
        assert_eq!(p.record(false), None);
        assert_eq!(p.record(true), None);
        assert_eq!(p.record(false), None);
        assert_eq!(p.record(false), None);
        assert_eq!(p.record(false), Some(false));
        let mut first = Prober::new(timing(1, 3));
        assert_eq!(first.record(false), None, "no verdict before the threshold");
        assert_eq!(first.record(true), Some(true));
    }

    #[test]
    fn timing_defaults_are_upstreams() {
        let probe = Probe::default();
        assert_eq!(
            Timing::of(&probe),
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3
            }
        );
    }

    #[test]
    fn named_ports_come_from_the_container() {
        let c: Container = serde_json::from_value(serde_json::json!({"name": "web",
            "ports": [{"name": "http", "containerPort": 8080}]}))
        .unwrap();
        assert_eq!(port(&c, &IntOrString::String("http".into())), Ok(8080));
        assert_eq!(
            port(&c, &IntOrString::String("admin".into())),
            Err("couldn't find port: admin in web".into())
        );
    }
}
