//! The process runtime: each container a real process, in a real pod
//! network ([`network`]), started by the container shim ([`shim`]) in its
//! pod's namespaces, with its environment ([`env`]), its pod's
//! `/etc/hosts` and `/etc/resolv.conf` ([`files`]), its program
//! ([`program`], built-ins in [`builtin`]), its log (CRI format, one file
//! per run) and its probes ([`probe`]). Nothing is pulled: images only
//! name a program. It needs root.
//!
//! What it makes (namespaces, veths, processes, files under its root) goes
//! with the pod, at shutdown, and — after a `kill -9` — at the next start
//! ([`cleanup`]).

pub mod builtin;
pub mod cgroup;
pub mod env;
pub mod files;
pub mod grpc;
pub mod hostports;
pub mod netns;
pub mod network;
pub mod probe;
pub mod program;
pub mod shim;
pub mod stdio;
pub mod tokens;
pub mod usage;
pub mod volumes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Container, ObjectReference, Pod, Probe, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use skiff_runtime::events::{reference, Recorder, Type};
use tokio::sync::mpsc;

use crate::node::{Capacity, SimNode};
use crate::runtime::{
    exit_code, Change, Containers, Exit, Refused, Runtime, ServiceVariables, Session,
};
use env::{Placement, Sources};
use probe::{Kind, Prober, Target, Timing};
use program::Program;

/// The hidden subcommand that runs the container shim.
pub const SHIM: &str = "container-shim";
/// The hidden subcommand that runs a built-in program.
pub const BUILTIN: &str = "builtin";
/// How often a running pod's projected volumes are brought up to date.
const VOLUME_REFRESH: Duration = Duration::from_secs(2);
/// The `PATH` a container starts with, as an image's usual one.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A node's address and its pods' host ports, by pod uid.
type NodePorts = (String, HashMap<String, Vec<hostports::Mapping>>);

/// A container's main process, as started.
#[derive(Clone)]
struct Started {
    name: String,
    pid: i32,
    /// Its cgroup, where the runtime makes them.
    group: Option<cgroup::Group>,
    at: Instant,
    /// Its standard streams, for clients to attach to.
    stdio: Arc<stdio::Stdio>,
}

/// A container's run as launched: its process, and its cgroup with the
/// OOM kills it had counted before the run.
struct Launched {
    pid: i32,
    child: tokio::process::Child,
    cgroup: Option<(cgroup::Group, u64)>,
    /// Told when the run ends.
    running: tokio::sync::watch::Sender<bool>,
}

impl Launched {
    /// Waits for the run to end.
    async fn wait(mut self) -> Exit {
        let code = self.child.wait().await.map(exit_code).unwrap_or(-1);
        let _ = self.running.send(false);
        Exit {
            code,
            oom_killed: self
                .cgroup
                .is_some_and(|(group, before)| group.oom_kills() > before),
        }
    }
}

/// The process runtime.
pub struct Process {
    client: Client,
    events: Recorder,
    root: PathBuf,
    /// This program, which runs the shim and the built-ins.
    exe: PathBuf,
    busybox: Option<String>,
    capacity: Capacity,
    /// The main processes of each pod's containers, by pod uid.
    pods: Arc<Mutex<HashMap<String, Vec<Started>>>>,
    /// The pods' cgroups, found at start (None: limits not enforced).
    cgroups: OnceLock<Option<cgroup::Cgroups>>,
    /// Each node's host ports, by pod uid: written whole at each change.
    host_ports: tokio::sync::Mutex<HashMap<String, NodePorts>>,
    /// Whether the namespace Skiff runs in gets routes to the pods.
    host_routes: bool,
    /// CPU readings between usage requests.
    meter: Mutex<usage::Meter>,
    /// The pods' service-account tokens.
    tokens: Arc<tokens::TokenCache>,
    /// ConfigMaps and Secrets the refreshes read lately.
    recent: Arc<Recent>,
    /// The tasks keeping each pod's projected volumes up to date.
    refreshers: Mutex<HashMap<String, tokio::task::AbortHandle>>,
}

impl Process {
    /// A runtime keeping its files under `root`, reading ConfigMaps and
    /// Secrets with `client`.
    pub fn new(
        client: Client,
        events: Recorder,
        root: PathBuf,
        capacity: &Capacity,
        host_routes: bool,
    ) -> Self {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .map(str::to_owned);
        Process {
            tokens: Arc::new(tokens::TokenCache::new(client.clone())),
            recent: Arc::default(),
            client,
            events,
            root,
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("skiff")),
            busybox,
            capacity: capacity.clone(),
            pods: Arc::default(),
            cgroups: OnceLock::new(),
            refreshers: Mutex::default(),
            meter: Mutex::default(),
            host_routes,
            host_ports: tokio::sync::Mutex::default(),
        }
    }

    /// Container `container` of the pod `uid`, if its process runs.
    fn started(&self, uid: &str, container: &str) -> Result<Started, String> {
        let pods = self.pods.lock().expect("the pods");
        pods.get(uid)
            .into_iter()
            .flatten()
            .find(|s| s.name == container && alive(s.pid))
            .cloned()
            .ok_or_else(|| format!("container {container} is not running"))
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }

    /// Starts container `c` of the pod `launch` describes, with `vars`:
    /// its spec for the shim, its log for this run, its process (the
    /// pod's record of it too).
    async fn launch(
        &self,
        launch: &Launch<'_>,
        c: &Container,
        vars: &[(String, String)],
    ) -> Result<Launched, String> {
        let pod = launch.pod;
        let uid = pod.uid().unwrap_or_default();
        let group = match self.cgroups.get().and_then(Option::as_ref) {
            Some(cgroups) => {
                let limits = cgroup::limits(c.resources.as_ref());
                Some(cgroups.container(&uid, &launch.limits, &c.name, &limits)?)
            }
            None => None,
        };
        let argv = match program::program(c, vars, self.busybox.as_deref()) {
            Program::Exec(argv) => argv,
            Program::Builtin(args) => {
                let exe = self.exe.display().to_string();
                [exe, BUILTIN.to_string()].into_iter().chain(args).collect()
            }
        };
        let security = c.security_context.as_ref();
        let pod_security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
        let uid_of = security
            .and_then(|s| s.run_as_user)
            .or(pod_security.and_then(|s| s.run_as_user));
        let gid_of = security
            .and_then(|s| s.run_as_group)
            .or(pod_security.and_then(|s| s.run_as_group));
        let container_dir = launch.dir.join(&c.name);
        std::fs::create_dir_all(container_dir.join("rootfs"))
            .map_err(|e| format!("{}: {e}", container_dir.display()))?;
        let etc = launch.dir.join("etc");
        let spec = shim::Spec {
            argv,
            env: vars.to_vec(),
            netns: Some(launch.netns.clone()),
            join: None,
            hostname: Some(launch.hostname.clone()),
            rootfs: Some(container_dir.join("rootfs")),
            binds: ["hosts", "resolv.conf", "hostname"]
                .iter()
                .map(|f| (etc.join(f), PathBuf::from("/etc").join(f), false))
                .chain(mounts(c, &launch.mounted)?)
                .collect(),
            workdir: c.working_dir.as_ref().map(PathBuf::from),
            user: uid_of.map(|u| (u as u32, gid_of.unwrap_or(u) as u32)),
            once: false,
            cgroups: group.iter().flat_map(cgroup::Group::procs).collect(),
        };
        let spec_path = container_dir.join("spec.json");
        std::fs::write(&spec_path, serde_json::to_vec(&spec).expect("a spec"))
            .map_err(|e| format!("{}: {e}", spec_path.display()))?;
        let log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(container_dir.join(format!("{}.log", launch.restarts)))
            .await
            .map_err(|e| format!("the container's log: {e}"))?;
        let cgroup = group.map(|g| {
            let before = g.oom_kills();
            (g, before)
        });
        let stdio::Plan {
            stdio: [input, output, error],
            terminal,
        } = stdio::plan(c)?;
        let mut child = tokio::process::Command::new(&self.exe)
            .arg(SHIM)
            .arg(&spec_path)
            .stdin(input)
            .stdout(output)
            .stderr(error)
            .spawn()
            .map_err(|e| format!("cannot start the container shim: {e}"))?;
        let pid = child.id().map(|p| p as i32).unwrap_or_default();
        let (running, watching) = tokio::sync::watch::channel(true);
        let streams = Arc::new(stdio::Stdio::start(c, terminal, &mut child, log, watching));
        self.pods
            .lock()
            .expect("the pods")
            .entry(uid)
            .or_default()
            .push(Started {
                name: c.name.clone(),
                pid,
                group: cgroup.as_ref().map(|(g, _)| g.clone()),
                at: Instant::now(),
                stdio: streams,
            });
        Ok(Launched {
            pid,
            child,
            cgroup,
            running,
        })
    }

    /// Runs a lifecycle hook of container `c` (main process and pod IP in
    /// `at`): exec,
    /// httpGet and tcpSocket as a probe's, or a sleep; a failure is a
    /// `Failed{PostStart,PreStop}Hook` event.
    async fn hook(
        &self,
        pod: &Pod,
        c: &Container,
        handler: k8s_openapi::api::core::v1::LifecycleHandler,
        at: (i32, &str),
        timeout: Duration,
        kind: &str,
    ) -> Result<(), String> {
        let (pid, ip) = at;
        if let Some(sleep) = &handler.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
            return Ok(());
        }
        let node = crate::node_of(pod);
        let dir = self.pod_dir(&pod.uid().unwrap_or_default()).join(&c.name);
        let started: shim::Spec = std::fs::read(dir.join("spec.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let target = Target {
            from: network::path(&network::named_node_namespace(node)),
            ip: ip.to_owned(),
            pid,
            env: started.env,
            exe: self.exe.clone(),
            dir,
        };
        // The handler as a probe, bounded by `timeout`.
        let as_probe = Probe {
            exec: handler.exec,
            http_get: handler.http_get,
            tcp_socket: handler.tcp_socket,
            timeout_seconds: Some(timeout.as_secs().clamp(1, i32::MAX as u64) as i32),
            ..Probe::default()
        };
        let result = probe::check(&as_probe, c, &target).await;
        if let Err(e) = &result {
            let message = format!("{kind}Hook failed: {e}");
            let reason = format!("Failed{kind}Hook");
            self.events
                .record(reference(pod), Type::Warning, &reason, message);
        }
        result
    }

    /// Sets the host ports of pod `uid` on `node` at `node_ip` (none:
    /// removes them) and writes the node's table again when they changed.
    async fn map_host_ports(
        &self,
        node: &str,
        node_ip: &str,
        uid: &str,
        mappings: Vec<hostports::Mapping>,
    ) -> Result<(), String> {
        let mut all = self.host_ports.lock().await;
        let (address, pods) = all
            .entry(node.to_owned())
            .or_insert_with(|| (node_ip.to_owned(), HashMap::new()));
        let before = pods.get(uid).cloned().unwrap_or_default();
        if before == mappings {
            return Ok(());
        }
        match mappings.is_empty() {
            true => pods.remove(uid),
            false => pods.insert(uid.to_owned(), mappings),
        };
        let mut every: Vec<hostports::Mapping> = pods.values().flatten().cloned().collect();
        every.sort();
        let namespace = network::named_node_namespace(node);
        skiff_proxy::run::nft(Some(&namespace), &hostports::script(address, &every))
            .await
            .map_err(|e| format!("hostPort: {e}"))?;
        Ok(())
    }

    /// The directories of the claims' volumes: they outlive their pods.
    fn claims(&self) -> PathBuf {
        self.root.join("claims")
    }
}

/// ConfigMaps and Secrets as read lately (ConfigMaps, then Secrets, by
/// namespace and name): the refreshes of every pod of the agent share
/// each read for one refresh period, so that a ConfigMap all pods mount
/// (`kube-root-ca.crt`) is read once a period, not once a pod.
#[derive(Default)]
pub struct Recent(Mutex<HashMap<Source, (Instant, Option<env::Data>)>>);

/// A ConfigMap (false) or Secret (true), by namespace and name.
type Source = (bool, String, String);

/// The data of ConfigMap (or, when `secret`, Secret) `name`, if it exists:
/// as `recent` read it within a refresh period, else read now.
async fn fetch(
    client: &Client,
    recent: Option<&Recent>,
    secret: bool,
    namespace: &str,
    name: &str,
) -> Result<Option<env::Data>, String> {
    let key = (secret, namespace.to_owned(), name.to_owned());
    if let Some(recent) = recent {
        if let Some((at, data)) = recent.0.lock().expect("the reads").get(&key) {
            if at.elapsed() < VOLUME_REFRESH {
                return Ok(data.clone());
            }
        }
    }
    let data = match secret {
        true => {
            let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
            let secret = api.get_opt(name).await.map_err(|e| e.to_string())?;
            secret.map(|s| {
                let data = s.data.unwrap_or_default().into_iter();
                data.map(|(k, v)| (k, v.0)).collect()
            })
        }
        false => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
            let map = api.get_opt(name).await.map_err(|e| e.to_string())?;
            map.map(|m| {
                let text = m.data.unwrap_or_default().into_iter();
                let mut data: env::Data = text.map(|(k, v)| (k, v.into_bytes())).collect();
                for (k, v) in m.binary_data.unwrap_or_default() {
                    data.insert(k, v.0);
                }
                data
            })
        }
    };
    if let Some(recent) = recent {
        let mut reads = recent.0.lock().expect("the reads");
        reads.retain(|_, (at, _)| at.elapsed() < VOLUME_REFRESH);
        reads.insert(key, (Instant::now(), data.clone()));
    }
    Ok(data)
}

/// The ConfigMaps and Secrets the pod's containers and volumes name (as
/// they are now, or as `recent` read them this refresh period), and its
/// volumes' tokens.
async fn sources(
    client: &Client,
    tokens: &tokens::TokenCache,
    recent: Option<&Recent>,
    pod: &Pod,
) -> Result<Sources, String> {
    let namespace = pod.namespace().unwrap_or_default();
    let (mut maps, mut secrets) = volumes::references(pod);
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let (m, s) = env::references(c);
        maps.extend(m);
        secrets.extend(s);
    }
    maps.sort();
    maps.dedup();
    secrets.sort();
    secrets.dedup();
    let mut sources = Sources::default();
    for name in maps {
        if let Some(data) = fetch(client, recent, false, &namespace, &name).await? {
            sources.config_maps.insert(name, data);
        }
    }
    for name in secrets {
        if let Some(data) = fetch(client, recent, true, &namespace, &name).await? {
            sources.secrets.insert(name, data);
        }
    }
    for (audience, expiration) in volumes::tokens(pod) {
        let token = tokens.get(pod, &audience, expiration).await?;
        sources.tokens.insert((audience, expiration), token);
    }
    Ok(sources)
}

/// What every container of one start of a pod shares.
struct Launch<'a> {
    pod: &'a Pod,
    dir: PathBuf,
    netns: PathBuf,
    hostname: String,
    mounted: Mounted,
    restarts: i32,
    /// The pod's cgroup's limits: the sum of its containers'.
    limits: cgroup::Limits,
}

/// A pod's volumes set up: where each is, and whether the kubelet writes
/// it (and so containers mount it read-only).
type Mounted = HashMap<String, (PathBuf, bool)>;

/// Sets up (or brings up to date) the pod's volumes under `pod_dir`.
fn set_up(
    pod: &Pod,
    sources: &Sources,
    placement: &Placement,
    pod_dir: &Path,
    claims: &Path,
) -> Result<Mounted, String> {
    let mut mounted = Mounted::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let at = |e: std::io::Error| format!("volume \"{}\": {e}", volume.name);
        match volumes::contents(pod, volume, sources, placement, pod_dir, claims)? {
            volumes::Backing::Directory(dir) => {
                let create = volume
                    .host_path
                    .as_ref()
                    .is_none_or(|h| matches!(h.type_.as_deref(), Some("DirectoryOrCreate")));
                if create {
                    std::fs::create_dir_all(&dir).map_err(at)?;
                }
                mounted.insert(volume.name.clone(), (dir, false));
            }
            volumes::Backing::Memory(dir) => {
                std::fs::create_dir_all(&dir).map_err(at)?;
                if !mounts_under(&dir).contains(&dir) {
                    nix::mount::mount(
                        Some("tmpfs"),
                        &dir,
                        Some("tmpfs"),
                        nix::mount::MsFlags::empty(),
                        None::<&str>,
                    )
                    .map_err(|e| at(e.into()))?;
                }
                mounted.insert(volume.name.clone(), (dir, false));
            }
            volumes::Backing::Projected(files) => {
                let dir = pod_dir.join("volumes").join(&volume.name);
                volumes::write(&dir, &files).map_err(at)?;
                mounted.insert(volume.name.clone(), (dir, true));
            }
        }
    }
    Ok(mounted)
}

/// Keeps the pod's ConfigMap, Secret and downward API volumes up to date
/// while its directory exists (upstream's kubelet does so on its sync).
async fn refresh(
    client: Client,
    tokens: Arc<tokens::TokenCache>,
    recent: Arc<Recent>,
    pod: Pod,
    placement: (String, String, String, String),
    pod_dir: PathBuf,
    claims: PathBuf,
) {
    let (pod_ip, host_ip, node_cpu, node_memory) = placement;
    let placement = Placement {
        pod_ip: &pod_ip,
        host_ip: &host_ip,
        node_cpu: &node_cpu,
        node_memory: &node_memory,
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    loop {
        tokio::time::sleep(VOLUME_REFRESH).await;
        if !pod_dir.exists() {
            return;
        }
        // Labels and annotations change under the downward API.
        let current = match volumes::reads_metadata(&pod) {
            true => api.get_opt(&pod.name_any()).await.ok().flatten(),
            false => None,
        };
        let current = current.unwrap_or_else(|| pod.clone());
        if let Ok(sources) = sources(&client, &tokens, Some(&recent), &current).await {
            let _ = set_up(&current, &sources, &placement, &pod_dir, &claims);
        }
    }
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
}

/// Whether this process may run the process runtime: it needs root.
pub fn check() -> Result<(), String> {
    match nix::unistd::geteuid().is_root() {
        true => Ok(()),
        false => Err("--runtime process needs root, to make network namespaces and mounts: run it with sudo, or use --runtime sim".into()),
    }
}

/// Removes every namespace Skiff made and kills what runs in them, and the
/// pods' files under the runtime's `root`: at start (a run killed with `-9`
/// left them) and at shutdown. Returns how many namespaces there were.
pub async fn cleanup(root: &Path) -> usize {
    let existing = network::existing();
    // The links of this process's network namespace (sysfs may show
    // another's).
    let links = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    if links.contains(&format!("{}:", network::HOST_LINK)) {
        if let Err(e) = network::apply(&[network::unwire_host()]).await {
            tracing::warn!(error = %e, "cannot remove the host's link onto the nodes' wire");
        }
    }
    // Pods first, then nodes, then the wire: a node's processes are its
    // hostNetwork pods'.
    for name in &existing {
        for pid in netns::pids(&network::path(name)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    for name in &existing {
        if let Err(e) = network::apply(&[network::remove(name)]).await {
            tracing::warn!(namespace = %name, error = %e, "cannot remove a network namespace");
        }
    }
    remove_tree(&root.join("pods"));
    if let Some(cgroups) = cgroup::Cgroups::find(root) {
        cgroups.cleanup().await;
    }
    existing.len()
}

/// The mount points at or under `dir` (in this process's mounts).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(PathBuf::from))
        .filter(|point| point.starts_with(dir))
        .collect()
}

/// Removes `dir` and what is under it, its memory volumes' mounts first.
fn remove_tree(dir: &Path) {
    for point in mounts_under(dir).iter().rev() {
        let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A container's volume mounts as binds: the volume's directory (or its
/// `subPath`) at the `mountPath`, read-only when asked or when the
/// kubelet writes the volume.
fn mounts(
    container: &Container,
    mounted: &Mounted,
) -> Result<Vec<(PathBuf, PathBuf, bool)>, String> {
    container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let (dir, projected) = mounted
                .get(&m.name)
                .ok_or_else(|| format!("volume {} is not found in the pod", m.name))?;
            let source = match m.sub_path.as_deref().filter(|p| !p.is_empty()) {
                Some(sub) if sub.split('/').any(|part| part == "..") => {
                    return Err(format!("subPath {sub:?} may not contain '..'"))
                }
                Some(sub) => {
                    let source = dir.join(sub);
                    if !source.exists() {
                        std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
                    }
                    source
                }
                None => dir.clone(),
            };
            let read_only = m.read_only == Some(true) || *projected;
            Ok((source, PathBuf::from(&m.mount_path), read_only))
        })
        .collect()
}

/// What a container's tasks tell its pod's [`Running`].
enum Report {
    Exited(Exit),
    Ready { index: usize, ready: bool },
    Unhealthy { index: usize, kind: Kind },
}

/// A pod's started containers.
struct Running {
    reports: mpsc::Receiver<Report>,
    ready: Vec<bool>,
    pids: Vec<i32>,
    names: Vec<String>,
    grace: Duration,
    events: Recorder,
    pod: ObjectReference,
}

/// Signals a container's whole process group, or its process alone in
/// the first moments before the shim has made the group (`setsid`).
fn signal(pid: i32, signal: Signal) {
    if kill(Pid::from_raw(-pid), signal).is_err() {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Whether a container's process group (or, before the shim makes it,
/// its process) is still there.
fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(-pid), None).is_ok() || kill(Pid::from_raw(pid), None).is_ok()
}

/// SIGTERM to each group, SIGKILL to what remains after `grace`.
async fn terminate(pids: &[i32], grace: Duration) {
    for &pid in pids {
        signal(pid, Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + grace;
    while pids.iter().any(|&p| alive(p)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for &pid in pids {
        signal(pid, Signal::SIGKILL);
    }
}

#[async_trait::async_trait]
impl Containers for Running {
    fn ready(&self) -> bool {
        self.ready.iter().all(|r| *r)
    }

    async fn next(&mut self) -> Change {
        loop {
            let Some(report) = self.reports.recv().await else {
                return std::future::pending().await;
            };
            match report {
                Report::Exited(exit) => {
                    // The pod's containers run and restart together.
                    for &pid in &self.pids {
                        signal(pid, Signal::SIGKILL);
                    }
                    return Change::Exited(exit);
                }
                Report::Ready { index, ready } => {
                    let before = self.ready();
                    self.ready[index] = ready;
                    if self.ready() != before {
                        return Change::Ready(self.ready());
                    }
                }
                Report::Unhealthy { index, kind } => {
                    let message = format!(
                        "Container {} failed {} probe, will be restarted",
                        self.names[index],
                        kind.title().to_lowercase()
                    );
                    self.events
                        .record(self.pod.clone(), Type::Normal, "Killing", message);
                    let (pid, grace) = (self.pids[index], self.grace);
                    tokio::spawn(async move { terminate(&[pid], grace).await });
                }
            }
        }
    }
}

/// Runs one kind of probe for container `index` until its verdict calls
/// for the container to restart (sent) or, for a startup probe, until it
/// passes (returns true). Every failure is an `Unhealthy` event.
#[allow(clippy::too_many_arguments)]
async fn watch(
    kind: Kind,
    spec: Probe,
    container: Container,
    target: Target,
    index: usize,
    reports: mpsc::Sender<Report>,
    events: Recorder,
    pod: ObjectReference,
) -> bool {
    let timing = Timing::of(&spec);
    tokio::time::sleep(timing.initial_delay).await;
    let mut prober = Prober::new(timing);
    let mut tick = tokio::time::interval(timing.period);
    loop {
        tick.tick().await;
        if reports.is_closed() {
            return false;
        }
        let result = probe::check(&spec, &container, &target).await;
        if let Err(message) = &result {
            let message = format!("{} probe failed: {message}", kind.title());
            events.record(pod.clone(), Type::Warning, "Unhealthy", message);
        }
        match (kind, prober.record(result.is_ok())) {
            (Kind::Readiness, Some(ready)) => {
                let _ = reports.send(Report::Ready { index, ready }).await;
            }
            (Kind::Startup, Some(true)) => return true,
            (Kind::Startup | Kind::Liveness, Some(false)) => {
                let _ = reports.send(Report::Unhealthy { index, kind }).await;
                return false;
            }
            _ => {}
        }
    }
}

/// The probes of container `index`: startup first, then liveness and
/// readiness beside each other.
fn probes(
    container: &Container,
    target: Target,
    index: usize,
    reports: &mpsc::Sender<Report>,
    events: &Recorder,
    pod: &ObjectReference,
) {
    let (startup, liveness, readiness) = (
        container.startup_probe.clone(),
        container.liveness_probe.clone(),
        container.readiness_probe.clone(),
    );
    if startup.is_none() && liveness.is_none() && readiness.is_none() {
        return;
    }
    let (container, reports, events, pod) = (
        container.clone(),
        reports.clone(),
        events.clone(),
        pod.clone(),
    );
    tokio::spawn(async move {
        let run = |kind, spec| {
            watch(
                kind,
                spec,
                container.clone(),
                target.clone(),
                index,
                reports.clone(),
                events.clone(),
                pod.clone(),
            )
        };
        if let Some(spec) = startup {
            if !run(Kind::Startup, spec).await {
                return;
            }
        }
        let liveness = liveness.map(|spec| tokio::spawn(run(Kind::Liveness, spec)));
        if let Some(spec) = readiness {
            run(Kind::Readiness, spec).await;
        }
        if let Some(liveness) = liveness {
            let _ = liveness.await;
        }
    });
}

#[async_trait::async_trait]
impl Runtime for Process {
    fn name(&self) -> &'static str {
        "process"
    }

    fn pods_outlive_the_agent(&self) -> bool {
        false
    }

    async fn prepare(&self, nodes: &[SimNode]) -> Result<(), String> {
        check()?;
        let left = cleanup(&self.root).await;
        if left > 0 {
            tracing::info!(namespaces = left, "removed what an earlier run left");
        }
        let pods = self.root.join("pods");
        std::fs::create_dir_all(&pods).map_err(|e| format!("{}: {e}", pods.display()))?;
        network::apply(&network::cluster()).await?;
        for node in nodes {
            network::apply(&network::node(node, nodes)).await?;
            netns::forward(network::path(&network::node_namespace(node)))
                .await
                .map_err(|e| format!("cannot turn forwarding on in {}: {e}", node.name))?;
        }
        if self.host_routes {
            network::apply(&network::host(nodes)).await?;
        }
        let cgroups = cgroup::Cgroups::detect(&self.root);
        if cgroups.is_none() {
            tracing::warn!("no writable cgroup hierarchy with the memory and cpu controllers: resource limits are recorded, not enforced");
        }
        let _ = self.cgroups.set(cgroups);
        Ok(())
    }

    async fn sandbox(&self, pod: &Pod, node: &SimNode, ip: &str) -> Result<(), String> {
        let uid = pod.uid().unwrap_or_default();
        let etc = self.pod_dir(&uid).join("etc");
        let host = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let write = |name: &str, text: String| {
            std::fs::write(etc.join(name), text).map_err(|e| format!("{}: {e}", etc.display()))
        };
        std::fs::create_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
        write("hosts", files::hosts(pod, ip, &host("/etc/hosts")))?;
        write("resolv.conf", files::resolv(pod, &host("/etc/resolv.conf")))?;
        let hostname = match host_network(pod) {
            true => node.name.clone(),
            false => files::hostname(pod),
        };
        write("hostname", format!("{hostname}\n"))?;
        if host_network(pod) {
            return Ok(());
        }
        network::apply(&network::pod(&uid, node, ip)).await?;
        let mappings = hostports::of(pod, ip);
        if mappings.is_empty() {
            return Ok(());
        }
        self.map_host_ports(&node.name, &node.host_ip, &uid, mappings)
            .await
    }

    async fn start(
        &self,
        pod: &Pod,
        node: &SimNode,
        ip: &str,
        services: &ServiceVariables,
        restarts: i32,
    ) -> Result<Box<dyn Containers>, Refused> {
        let uid = pod.uid().unwrap_or_default();
        let dir = self.pod_dir(&uid);
        let spec = pod.spec.clone().unwrap_or_default();
        let sources = sources(&self.client, &self.tokens, None, pod).await?;
        let placement = Placement {
            pod_ip: ip,
            host_ip: &node.host_ip,
            node_cpu: &self.capacity.cpu,
            node_memory: &self.capacity.memory,
        };
        let mounted = set_up(pod, &sources, &placement, &dir, &self.claims())?;
        if restarts == 0 && mounted.values().any(|(_, projected)| *projected) {
            let placement = (
                ip.to_owned(),
                node.host_ip.clone(),
                self.capacity.cpu.clone(),
                self.capacity.memory.clone(),
            );
            let task = tokio::spawn(refresh(
                self.client.clone(),
                self.tokens.clone(),
                self.recent.clone(),
                pod.clone(),
                placement,
                dir.clone(),
                self.claims(),
            ));
            self.refreshers
                .lock()
                .expect("the refreshers")
                .insert(uid.clone(), task.abort_handle());
        }
        let hostname = std::fs::read_to_string(dir.join("etc/hostname"))
            .map_err(|e| format!("the pod's sandbox is gone: {e}"))?
            .trim()
            .to_owned();
        // Every container's environment first: one that cannot be made
        // keeps them all from starting.
        let all: Vec<&Container> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .collect();
        let mut environments = HashMap::new();
        for c in &all {
            let variables = services
                .iter()
                .find(|(name, _)| *name == c.name)
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default();
            let mut vars = vec![
                ("PATH".to_string(), PATH.to_string()),
                ("HOSTNAME".to_string(), hostname.clone()),
            ];
            for (k, v) in env::environment(pod, c, variables, &sources, &placement)? {
                vars.retain(|(key, _)| *key != k);
                vars.push((k, v));
            }
            environments.insert(c.name.clone(), vars);
        }
        let launch = Launch {
            pod,
            dir: dir.clone(),
            netns: match host_network(pod) {
                true => network::path(&network::node_namespace(node)),
                false => network::path(&network::pod_namespace(&uid)),
            },
            hostname,
            mounted,
            restarts,
            limits: cgroup::pod_limits(&all),
        };
        // The last run's processes are gone: their pids may be reused.
        self.pods
            .lock()
            .expect("the pods")
            .insert(uid.clone(), Vec::new());
        let reference = reference(pod);
        let (tx, rx) = mpsc::channel(64);
        let mut running: Vec<Container> = Vec::new();
        let mut pids = Vec::new();
        let mut keep = |c: &Container, launched: Launched, running: &mut Vec<Container>| {
            let exited = tx.clone();
            let pid = launched.pid;
            tokio::spawn(async move {
                let exit = launched.wait().await;
                let _ = exited.send(Report::Exited(exit)).await;
            });
            let target = Target {
                from: network::path(&network::node_namespace(node)),
                ip: ip.to_owned(),
                pid,
                env: environments[&c.name].clone(),
                exe: self.exe.clone(),
                dir: dir.join(&c.name),
            };
            probes(c, target, running.len(), &tx, &self.events, &reference);
            pids.push(pid);
            running.push(c.clone());
        };
        // Init containers in order, each to its end; sidecars (those that
        // restart Always) start and stay, as upstream's.
        for c in spec.init_containers.iter().flatten() {
            let launched = self.launch(&launch, c, &environments[&c.name]).await?;
            if c.restart_policy.as_deref() == Some("Always") {
                keep(c, launched, &mut running);
                continue;
            }
            let Exit { code, .. } = launched.wait().await;
            if code != 0 {
                for &pid in &pids {
                    signal(pid, Signal::SIGKILL);
                }
                return Err(Refused {
                    reason: "PodInitializing",
                    message: format!("init container {} exited with code {code}", c.name),
                });
            }
        }
        for c in &spec.containers {
            let launched = self.launch(&launch, c, &environments[&c.name]).await?;
            let pid = launched.pid;
            // A postStart hook holds the next container back; its failure
            // kills this one, which then restarts as any exit would.
            if let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) {
                let timeout = Duration::from_secs(30);
                let hooked = self.hook(pod, c, handler, (pid, ip), timeout, "PostStart");
                if hooked.await.is_err() {
                    signal(pid, Signal::SIGKILL);
                }
            }
            keep(c, launched, &mut running);
        }
        Ok(Box::new(Running {
            reports: rx,
            ready: running
                .iter()
                .map(|c| c.readiness_probe.is_none())
                .collect(),
            pids,
            names: running.iter().map(|c| c.name.clone()).collect(),
            grace: Duration::from_secs(
                spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64
            ),
            events: self.events.clone(),
            pod: reference,
        }))
    }

    async fn stop(&self, pod: &Pod, grace: Duration) {
        let uid = pod.uid().unwrap_or_default();
        let pids = self
            .pods
            .lock()
            .expect("the pods")
            .remove(&uid)
            .unwrap_or_default();
        // preStop hooks first, within the grace period, then SIGTERM for
        // what is left of it.
        let began = tokio::time::Instant::now();
        let hooks = pids.iter().filter_map(|started| {
            let c = pod
                .spec
                .as_ref()?
                .containers
                .iter()
                .find(|c| c.name == started.name)?;
            let handler = c.lifecycle.as_ref()?.pre_stop.clone()?;
            let ip = pod.status.as_ref()?.pod_ip.clone().unwrap_or_default();
            Some(async move {
                self.hook(pod, c, handler, (started.pid, &ip), grace, "PreStop")
                    .await
            })
        });
        let _ = tokio::time::timeout(grace, futures::future::join_all(hooks)).await;
        let pids: Vec<i32> = pids.into_iter().map(|started| started.pid).collect();
        terminate(&pids, grace.saturating_sub(began.elapsed())).await;
        if let Some(task) = self.refreshers.lock().expect("the refreshers").remove(&uid) {
            task.abort();
        }
        self.tokens.forget(&uid);
        let node = crate::node_of(pod);
        if !hostports::of(pod, "").is_empty() {
            if let Err(e) = self.map_host_ports(node, "", &uid, Vec::new()).await {
                tracing::warn!(error = %e, "cannot remove a pod's host ports");
            }
        }
        let namespace = network::pod_namespace(&uid);
        let path = network::path(&namespace);
        if path.exists() {
            for pid in netns::pids(&path) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = network::apply(&[network::remove(&namespace)]).await;
        }
        remove_tree(&self.pod_dir(&uid));
        if let Some(cgroups) = self.cgroups.get().and_then(Option::as_ref) {
            cgroups.remove_pod(&uid).await;
        }
    }

    async fn exec(
        &self,
        pod: &Pod,
        container: &str,
        command: Vec<String>,
        tty: bool,
    ) -> Result<Session, String> {
        let uid = pod.uid().unwrap_or_default();
        let pid = self.started(&uid, container)?.pid;
        let dir = self.pod_dir(&uid).join(container);
        let started: shim::Spec = std::fs::read(dir.join("spec.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| format!("container {container} has no spec"))?;
        if command.is_empty() {
            return Err("you must specify at least one command for the container".into());
        }
        let spec = shim::Spec {
            argv: command,
            env: started.env,
            join: Some(pid),
            workdir: started.workdir,
            user: started.user,
            cgroups: started.cgroups,
            ..Default::default()
        };
        let path = shim::write_once(&dir, &spec)?;
        let mut shim = tokio::process::Command::new(&self.exe);
        shim.arg(SHIM).arg(&path).kill_on_drop(true);
        let stdio::Plan {
            stdio: [input, output, error],
            terminal,
        } = stdio::streams(tty, true)?;
        let child = shim
            .stdin(input)
            .stdout(output)
            .stderr(error)
            .spawn()
            .map_err(|e| {
                let _ = std::fs::remove_file(&path);
                format!("cannot start the container shim: {e}")
            })?;
        Ok(Session::command(child, terminal))
    }

    async fn attach(&self, pod: &Pod, container: &str, stdin: bool) -> Result<Session, String> {
        let started = self.started(&pod.uid().unwrap_or_default(), container)?;
        Ok(started.stdio.attach(stdin))
    }

    fn usage(&self, pods: &[Arc<Pod>]) -> Vec<crate::runtime::PodUsage> {
        let sessions = usage::sessions();
        let table = self.pods.lock().expect("the pods").clone();
        let mut meter = self.meter.lock().expect("the meter");
        let mut live = Vec::new();
        let result = pods
            .iter()
            .filter_map(|pod| {
                let containers = table.get(&pod.uid()?)?;
                let used = containers
                    .iter()
                    .filter_map(|s| {
                        let (cpu, memory, running_for) = match s.group.as_ref() {
                            Some(group) => {
                                let (cpu, memory) = group.usage()?;
                                (cpu, memory, s.at.elapsed().as_secs_f64())
                            }
                            None => usage::totals(sessions.get(&s.pid)?),
                        };
                        live.push(s.pid);
                        Some((s.name.clone(), meter.rate(s.pid, cpu, running_for), memory))
                    })
                    .collect();
                Some(crate::runtime::PodUsage {
                    namespace: pod.namespace()?,
                    name: pod.name_any(),
                    containers: used,
                })
            })
            .collect();
        meter.keep(&live);
        result
    }

    fn network(&self, pod: &Pod) -> Option<PathBuf> {
        let node = pod.spec.as_ref()?.node_name.as_deref()?;
        let path = match host_network(pod) {
            true => network::path(&network::named_node_namespace(node)),
            false => network::path(&network::pod_namespace(&pod.uid()?)),
        };
        path.exists().then_some(path)
    }

    fn running(&self, uid: &str, container: &str) -> bool {
        self.started(uid, container).is_ok()
    }

    fn log(&self, uid: &str, container: &str, previous: bool) -> Option<PathBuf> {
        let dir = self.pod_dir(uid).join(container);
        let mut runs: Vec<u32> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect();
        runs.sort_unstable();
        let run = match previous {
            true => runs.iter().rev().nth(1),
            false => runs.last(),
        }?;
        Some(dir.join(format!("{run}.log")))
    }
}
