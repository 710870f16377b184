//! The seam between a node agent's pod lifecycle (one for both runtimes:
//! status, events, restarts, deletion) and what runs the containers:
//! [`crate::sim::Sim`] (no processes; thousands of nodes) or
//! [`crate::process::Process`] (real processes in real namespaces).

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
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

/// A session with a running container's streams: a command started in
/// it (`kubectl exec`), or the container's own (`kubectl attach`).
pub struct Session {
    streams: Option<Streams>,
    end: End,
    terminal: Option<Terminal>,
}

/// How a session ends.
enum End {
    /// An exec's command exits.
    Command(tokio::process::Child),
    /// An attach ends with the container's run (the value turns false).
    Run(tokio::sync::watch::Receiver<bool>),
}

/// A terminal's master side, which resizes it.
#[derive(Clone)]
pub struct Terminal(Arc<OwnedFd>);

impl Terminal {
    /// The terminal whose master side is `master`.
    pub fn new(master: OwnedFd) -> Self {
        Terminal(Arc::new(master))
    }

    /// Gives the terminal `width` columns and `height` rows (its
    /// programs get SIGWINCH).
    pub fn resize(&self, width: u16, height: u16) {
        let size = rustix::termios::Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let _ = rustix::termios::tcsetwinsize(&*self.0, size);
    }

    /// Its reading and writing ends, as one file each.
    pub fn files(&self) -> Option<(tokio::fs::File, tokio::fs::File)> {
        let file = |fd: std::io::Result<OwnedFd>| fd.ok().map(|fd| std::fs::File::from(fd).into());
        Some((file(self.0.try_clone())?, file(self.0.try_clone())?))
    }
}

/// The terminal size a resize message holds: `{"Width":80,"Height":24}`,
/// as kubectl and the Python client send it (the last of several wins).
pub fn terminal_size(message: &[u8]) -> Option<(u16, u16)> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    serde_json::Deserializer::from_slice(message)
        .into_iter::<Size>()
        .map_while(Result::ok)
        .last()
        .map(|s| (s.width, s.height))
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
#[derive(Default)]
pub struct Streams {
    /// Standard output (a terminal's output).
    pub stdout: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    /// Standard error (none with a terminal).
    pub stderr: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    /// Standard input (a terminal's input).
    pub stdin: Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>,
}

impl Session {
    /// An exec's command, its standard streams piped, or all three its
    /// terminal's.
    pub fn command(mut child: tokio::process::Child, terminal: Option<Terminal>) -> Self {
        let streams = match terminal.as_ref().and_then(Terminal::files) {
            Some((output, input)) => Streams {
                stdout: Some(Box::new(output)),
                stderr: None,
                stdin: Some(Box::new(input)),
            },
            None => Streams {
                stdout: child.stdout.take().map(|o| Box::new(o) as _),
                stderr: child.stderr.take().map(|e| Box::new(e) as _),
                stdin: child.stdin.take().map(|i| Box::new(i) as _),
            },
        };
        Session {
            streams: Some(streams),
            end: End::Command(child),
            terminal,
        }
    }

    /// A container's own `streams`, for as long as `running` holds.
    pub fn attached(
        streams: Streams,
        terminal: Option<Terminal>,
        running: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Session {
            streams: Some(streams),
            end: End::Run(running),
            terminal,
        }
    }

    /// Takes the session's standard streams.
    pub fn streams(&mut self) -> Streams {
        self.streams.take().unwrap_or_default()
    }

    /// The terminal, if the session has one.
    pub fn terminal(&self) -> Option<Terminal> {
        self.terminal.clone()
    }

    /// Waits for the session to end: the command's exit code, or 0 when
    /// an attached container's run ends.
    pub async fn wait(&mut self) -> i32 {
        match &mut self.end {
            End::Command(child) => child.wait().await.map(exit_code).unwrap_or(1),
            End::Run(running) => {
                let _ = running.wait_for(|running| !running).await;
                0
            }
        }
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
    /// Joins the streams of a running container of the pod: its output,
    /// and its input when `stdin` (and it has one).
    async fn attach(&self, pod: &Pod, container: &str, stdin: bool) -> Result<Session, String>;
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
