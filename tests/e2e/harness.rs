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
    /// The machine it runs in, if not this one: its holder's pid.
    machine: Option<u32>,
}

/// A machine of a test's own: network, mount and PID namespaces, entered
/// with `nsenter`, with a private `/run/netns` and `/proc`. Its first
/// process holds them; killing it (on drop, also when the test fails)
/// kills everything inside, so nothing of the test outlives it, and
/// nothing it routes reaches the host's network.
pub struct Machine {
    holder: Child,
    /// The first process inside, as this machine numbers it.
    pub pid: u32,
}

impl Machine {
    /// A new machine; None (the test is skipped, with a reason) when this
    /// process is not root, except in CI, where that is a failure.
    pub fn new() -> Option<Machine> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !root {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the process runtime's tests need root in CI"
            );
            eprintln!("SKIPPED: the process runtime needs root (network namespaces)");
            return None;
        }
        let mut holder = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "private",
                "sh",
                "-c",
                // The first process reaps orphans, as a machine's init.
                "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns && ip link set lo up && echo ready && exec python3 -c \"$REAPER\"",
            ])
            .env("REAPER", REAPER)
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut ready = String::new();
        BufReader::new(holder.stdout.take().expect("stdout"))
            .read_line(&mut ready)
            .expect("the machine started");
        assert_eq!(ready.trim(), "ready", "the machine started");
        let pid = children(holder.id())
            .first()
            .copied()
            .expect("the machine's first process");
        Some(Machine { holder, pid })
    }

    /// `program args` inside the machine (its network and mounts).
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.pid.to_string(), "-n", "-m", "--", program])
            .args(args);
        command
    }

    /// Runs `program args` inside the machine; its standard output, failing
    /// on an error.
    pub fn run_ok(&self, program: &str, args: &[&str]) -> String {
        let output = self.command(program, args).output().expect("nsenter");
        succeeded(output, program, args)
    }

    /// The network namespaces inside.
    pub fn namespaces(&self) -> Vec<String> {
        self.run_ok("ip", &["netns", "list"])
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A machine's init: reaps whatever ends inside it.
const REAPER: &str = "import os, time
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    time.sleep(0.1)
";

/// The children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

impl Server {
    /// Starts a server on a free port with its data in `data_dir`, and waits
    /// (up to 20 s) for its ready line.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// Starts a server with extra `skiff server` flags.
    pub fn start_with(data_dir: &Path, flags: &[&str]) -> Server {
        Self::start_in(None, data_dir, flags)
    }

    /// Starts a server inside `machine` (else here) with extra flags.
    pub fn start_in(machine: Option<&Machine>, data_dir: &Path, flags: &[&str]) -> Server {
        let skiff = env!("CARGO_BIN_EXE_skiff");
        let mut command = match machine {
            Some(machine) => {
                let mut command = Command::new("nsenter");
                command.args([
                    "-t",
                    &machine.pid.to_string(),
                    "-n",
                    "-m",
                    "-p",
                    "--",
                    skiff,
                ]);
                command
            }
            None => Command::new(skiff),
        };
        // Loopback on free ports, unless the flags say otherwise.
        let defaults = [("--listen", "127.0.0.1:0"), ("--dns-listen", "127.0.0.1:0")]
            .into_iter()
            .filter(|(flag, _)| !flags.contains(flag))
            .flat_map(|(flag, value)| [flag, value]);
        let mut child = command
            .arg("server")
            .args(defaults)
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
            machine: machine.map(|m| m.pid),
        }
    }

    /// The server's own process (inside a machine, `nsenter`'s child).
    pub fn pid(&self) -> u32 {
        match self.machine {
            Some(_) => children(self.child.id())
                .first()
                .copied()
                .unwrap_or(self.child.id()),
            None => self.child.id(),
        }
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn crash(mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (up to 10 s) for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.pid().to_string();
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

    /// Starts `program` with this server's kubeconfig and `args` (inside
    /// its machine, if it has one).
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = match self.machine {
            Some(pid) => {
                let mut command = Command::new("nsenter");
                command.args(["-t", &pid.to_string(), "-n", "-m", "--", program]);
                command
            }
            None => Command::new(program),
        };
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
            if self.machine.is_some() {
                // A server in a machine runs real pods: stopped as a user
                // stops it, it removes what outlives the machine (the
                // pods' cgroups); killed after 10 s.
                let pid = self.pid().to_string();
                let _ = Command::new("kill").args(["-TERM", &pid]).status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether the Python `kubernetes` package imports. Without it the calling
/// test is skipped with a reason, except in CI, where that is a failure.
/// Runs the script `tests/e2e/NAME` with `python3` (through `command`,
/// which is given the program and must run it: here, or in a machine)
/// against the server's kubeconfig, and checks it printed `CHECK: ok` for
/// each of `checks`.
pub fn python_checks(
    command: impl Fn(&str, &[&str]) -> Command,
    server: &Server,
    name: &str,
    checks: &[&str],
) {
    let script = format!("{}/../tests/e2e/{name}", env!("CARGO_MANIFEST_DIR"));
    let kubeconfig = server.kubeconfig.to_str().expect("a UTF-8 path");
    let output = command("python3", &[&script, kubeconfig])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for check in checks {
        assert!(stdout.contains(&format!("{check}: ok")), "{stdout}");
    }
}

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

    /// Waits until every namespace holds what the controllers put in each
    /// (its `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap),
    /// so that a test counting on a quiet history starts after that burst
    /// of writes.
    pub fn settled(&self) {
        let names = |args: &[&str]| -> Vec<(String, String)> {
            let field = |meta: &serde_json::Value, key: &str| {
                meta[key].as_str().unwrap_or_default().to_owned()
            };
            self.json(args)["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    (
                        field(&o["metadata"], "namespace"),
                        field(&o["metadata"], "name"),
                    )
                })
                .collect()
        };
        eventually(20, "every namespace's defaults", || {
            let accounts = names(&["serviceaccounts", "-A"]);
            let maps = names(&["configmaps", "-A"]);
            names(&["namespaces"])
                .into_iter()
                .all(|(_, n)| {
                    accounts.contains(&(n.clone(), "default".to_owned()))
                        && maps.contains(&(n, "kube-root-ca.crt".to_owned()))
                })
                .then_some(())
        });
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
