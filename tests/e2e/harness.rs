//! Starting and stopping `skiff server`, and finding the real clients.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `skiff server`; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// Where its cluster DNS answers (UDP and TCP).
    pub dns: std::net::SocketAddr,
    pub kubeconfig: PathBuf,
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts a server on a free port with its data in `data_dir`, and waits
    /// (up to 20 s) for its ready line.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// Starts a server with extra `skiff server` flags.
    pub fn start_with(data_dir: &Path, flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
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
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start skiff server");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("skiff server printed its ready line");
        // "skiff server ready at URL in N ms; dns: ADDRESS; kubeconfig: PATH"
        let url = line.split_whitespace().nth(4).expect("a URL").to_owned();
        let dns = line
            .split("dns: ")
            .nth(1)
            .and_then(|rest| rest.split(';').next()?.parse().ok())
            .expect("the DNS address");
        let kubeconfig = PathBuf::from(
            line.rsplit("kubeconfig: ")
                .next()
                .expect("a kubeconfig path"),
        );
        Server {
            child,
            url,
            dns,
            kubeconfig,
            data_dir: data_dir.to_owned(),
        }
    }

    /// Sends SIGTERM and waits (up to 10 s) for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "skiff server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.client("kubectl", args)
    }

    /// Runs kubectl and returns its standard output, failing on an error.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        succeeded(self.kubectl(args), "kubectl", args)
    }

    /// Runs skiff's own client verbs against this server.
    pub fn skiff(&self, args: &[&str]) -> Output {
        self.client(env!("CARGO_BIN_EXE_skiff"), args)
    }

    /// Runs a skiff client verb and returns its standard output, failing on
    /// an error.
    pub fn skiff_ok(&self, args: &[&str]) -> String {
        succeeded(self.skiff(args), "skiff", args)
    }

    /// Starts `program` with this server's kubeconfig and `args`.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        command
    }

    fn client(&self, program: &str, args: &[&str]) -> Output {
        self.command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    }
}

/// The standard output of a command that must have succeeded.
fn succeeded(output: Output, program: &str, args: &[&str]) -> String {
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether the Python `kubernetes` package imports. Without it the calling
/// test is skipped with a reason, except in CI, where that is a failure.
pub fn have_python_client() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the Python kubernetes package is required in CI"
        );
        eprintln!(
            "SKIPPED: the Python kubernetes package is not installed (pip install kubernetes)"
        );
    }
    found
}

/// Whether `tool` is on PATH. Without it the calling test is skipped with
/// a reason, except in CI (`CI=true`), where a missing tool is a failure.
pub fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg(if tool == "kubectl" {
            "version"
        } else {
            "--version"
        })
        .arg(if tool == "kubectl" { "--client" } else { "" })
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required in CI but was not found"
        );
        eprintln!("SKIPPED: {tool} is not on PATH");
    }
    found
}

impl Server {
    /// `kubectl get ARGS -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["get"];
        all.extend(args);
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&all)).expect("kubectl printed JSON")
    }
}

/// Polls `check` every 100 ms until it answers `Some`, for at most
/// `seconds`; fails naming `what` otherwise.
pub fn eventually<T>(seconds: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {seconds} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
