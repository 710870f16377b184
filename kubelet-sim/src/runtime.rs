//! The seam between a node agent's pod lifecycle (one for both runtimes:
//! status, events, restarts, deletion) and what runs the containers:
//! [`crate::sim::Sim`] (no processes; thousands of nodes) or
//! [`crate::process::Process`] (real processes in real namespaces).

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::node::SimNode;

/// What a pod's running containers report next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// They passed (or failed) their readiness probes.
    Ready(bool),
    /// A container exited (or was killed after failing its liveness
    /// probe): the pod's containers are done.
    Exited(Exit),
}

/// How a container's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Its exit code (128 + the signal that killed it).
    pub code: i32,
    /// Whether the kernel's OOM killer ended it, over its memory limit.
    pub oom_killed: bool,
}

impl Exit {
    /// An exit with `code`, not OOM-killed.
    pub fn code(code: i32) -> Self {
        Exit {
            code,
            oom_killed: false,
        }
    }

    /// The reason a terminated container reports, as the kubelet's.
    pub fn reason(&self) -> &'static str {
        match (self.oom_killed, self.code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            _ => "Error",
        }
    }
}

/// A pod's containers once started.
#[async_trait::async_trait]
pub trait Containers: Send {
    /// Whether they are ready as they start (no readiness probe to pass).
    fn ready(&self) -> bool;
    /// Waits for what happens next to them.
    async fn next(&mut self) -> Change;
}

/// A command started in a running container (`kubectl exec`): its
/// process, and the terminal's master side when it has one (then its
/// standard streams are the terminal).
pub struct Session {
    /// The process, with its standard streams piped when without a
    /// terminal.
    pub child: tokio::process::Child,
    /// The terminal.
    pub terminal: Option<tokio::fs::File>,
}

/// What one pod's containers use: (container, CPU in nanocores, memory in
/// bytes) each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// Each container's name, CPU (nanocores) and memory (bytes).
    pub containers: Vec<(String, u64, u64)>,
}

/// A session's standard streams, whichever way they run (pipes, or one
/// terminal for all three).
pub struct Streams {
    /// Standard output (a terminal's output).
    pub stdout: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    /// Standard error (none with a terminal).
    pub stderr: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    /// Standard input (a terminal's input).
    pub stdin: Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>,
}

impl Session {
    /// Takes the session's standard streams.
    pub async fn streams(&mut self) -> Streams {
        match self.terminal.take() {
            Some(terminal) => Streams {
                stdout: match terminal.try_clone().await {
                    Ok(out) => Some(Box::new(out)),
                    Err(_) => None,
                },
                stderr: None,
                stdin: Some(Box::new(terminal)),
            },
            None => Streams {
                stdout: self.child.stdout.take().map(|o| Box::new(o) as _),
                stderr: self.child.stderr.take().map(|e| Box::new(e) as _),
                stdin: self.child.stdin.take().map(|i| Box::new(i) as _),
            },
        }
    }

    /// Waits for the command to end; its exit code.
    pub async fn wait(&mut self) -> i32 {
        self.child.wait().await.map(exit_code).unwrap_or(1)
    }
}

/// The exit code of a finished process: its own, or 128 + the signal
/// that ended it, as container runtimes report.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Why a runtime runs no commands in containers.
pub const NO_PROCESSES: &str =
    "the simulated runtime runs no processes; start the server with --runtime process";

/// Why a pod's containers cannot start yet: the waiting reason its
/// containers report, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `CreateContainerConfigError`, `PodInitializing`.
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
}

impl From<String> for Refused {
    /// A configuration that cannot be made (a missing ConfigMap, say).
    fn from(message: String) -> Self {
        Refused {
            reason: "CreateContainerConfigError",
            message,
        }
    }
}

/// The Service variables of each container: name, then `KEY=value` pairs.
pub type ServiceVariables = [(String, Vec<(String, String)>)];

/// What runs a node's pods.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// Its name: the scheme of its container IDs (`sim://...`).
    fn name(&self) -> &'static str;
    /// Whether pods keep running while the agent is down (a simulated
    /// pod does; a real one is stopped by the next start's cleanup and
    /// started again).
    fn pods_outlive_the_agent(&self) -> bool;
    /// Gets the nodes ready before any pod comes.
    async fn prepare(&self, nodes: &[SimNode]) -> Result<(), String>;
    /// Makes the pod's sandbox on `node` with `ip` (its network).
    async fn sandbox(&self, pod: &Pod, node: &SimNode, ip: &str) -> Result<(), String>;
    /// Starts the pod's containers, for the `restarts`-th time; an error
    /// is why they cannot start yet (a missing ConfigMap, say) and is
    /// tried again.
    async fn start(
        &self,
        pod: &Pod,
        node: &SimNode,
        ip: &str,
        services: &ServiceVariables,
        restarts: i32,
    ) -> Result<Box<dyn Containers>, Refused>;
    /// Stops what of the pod runs (SIGTERM, then SIGKILL after `grace`)
    /// and removes its sandbox.
    async fn stop(&self, pod: &Pod, grace: Duration);
    /// Starts `command` inside a running container of the pod, with a
    /// terminal when `tty`.
    async fn exec(
        &self,
        pod: &Pod,
        container: &str,
        command: Vec<String>,
        tty: bool,
    ) -> Result<Session, String>;
    /// What the containers of `pods` use now.
    fn usage(&self, pods: &[std::sync::Arc<Pod>]) -> Vec<PodUsage>;
    /// The network namespace the pod's ports are reached in (None: no
    /// process listens, the simulated runtime).
    fn network(&self, pod: &Pod) -> Option<PathBuf>;
    /// Whether a container of the pod runs a process now.
    fn running(&self, uid: &str, container: &str) -> bool;
    /// The log file of a container's current (or previous) run, if it
    /// writes one.
    fn log(&self, uid: &str, container: &str, previous: bool) -> Option<PathBuf>;
}
