//! A node's proxy at work: it hears Services and EndpointSlices from the
//! process's shared informers, records their changes, and once both
//! caches have synced turns each batch of changes into one sync (no more
//! often than the minimum sync period), with a full resync now and then
//! that rewrites the whole table and so repairs any drift.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use skiff_runtime::events::{reference, Recorder, Type};
use skiff_runtime::informers::{Event, Informer};
use tokio::time::Instant;

use crate::model::{Node, PortName, PortRules, ServiceKey};
use crate::nftables::socket::Connection;
use crate::nftables::{self, Op, Table};
use crate::tracker::State;
use crate::userspace::Userspace;

/// What a proxy programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// IPVS virtual servers over generic netlink.
    Ipvs,
    /// A kube-proxy-shaped nftables table.
    Nftables,
    /// Sockets of its own that carry each connection.
    Userspace,
}

impl Mode {
    /// Its name, as `--proxy-mode` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Ipvs => "ipvs",
            Mode::Nftables => "nftables",
            Mode::Userspace => "userspace",
        }
    }
}

/// `--proxy-mode auto`: IPVS where its netlink family answers in the
/// named namespace, else nftables where `nft` works there, else
/// userspace; with the reason, for the one log line that says so.
pub async fn detect(namespace: Option<&str>) -> (Mode, &'static str) {
    if crate::ipvs::available(namespace.map(str::to_owned)).await {
        return (Mode::Ipvs, "the IPVS netlink family answers");
    }
    if nft(namespace, "list tables\n").await.is_ok() {
        return (Mode::Nftables, "the kernel has no IPVS; nft works");
    }
    (
        Mode::Userspace,
        "the kernel has neither IPVS nor a working nft",
    )
}

/// How one node's proxy runs.
#[derive(Clone)]
pub struct Config {
    /// The node it programs.
    pub node: Node,
    /// What it programs (None: [`detect`] it at start).
    pub mode: Option<Mode>,
    /// The IPVS scheduler (`rr`, `wrr`, `lc`, `wlc`, `sh`, `dh`, `sed`,
    /// `nq`, `mh`).
    pub scheduler: String,
    /// The named network namespace it programs (`ip netns`), or None for
    /// the one it runs in.
    pub namespace: Option<String>,
    /// At least this long between two syncs (kube-proxy's
    /// `minSyncPeriod`; zero: every batch of changes at once).
    pub min_sync_period: Duration,
    /// A full resync this often.
    pub resync_period: Duration,
    /// Where it reports, as Events on each Service, the syncs that
    /// programmed a few Services (for `skiff trace svc/NAME`), if anywhere.
    pub events: Option<Recorder>,
}

/// The component its Events name.
pub const COMPONENT: &str = "skiff-proxy";

/// A sync that touched at most this many Services reports each as an
/// Event; a larger one (a full sync, a burst) only logs.
pub const EVENTS_UP_TO: usize = 10;

/// What the Event of `service`'s sync says: each of its ClusterIP ports
/// and where it leads now (no rules: it was removed).
pub fn synced_message(
    service: &ServiceKey,
    rules: &BTreeMap<PortName, PortRules>,
    mode: Mode,
    node: &str,
    elapsed: Duration,
) -> String {
    let ports: Vec<String> = rules
        .iter()
        .filter(|(name, _)| name.service == *service)
        .flat_map(|(_, port)| port.virtuals.iter())
        .filter(|(_, v)| v.traffic == crate::model::Traffic::Internal)
        .map(|(address, v)| {
            format!(
                "{}:{}/{} -> {} endpoint{}",
                address.ip,
                address.port,
                address.protocol.name().to_uppercase(),
                v.backends.len(),
                if v.backends.len() == 1 { "" } else { "s" }
            )
        })
        .collect();
    let what = match ports.is_empty() {
        true => "no rules".to_owned(),
        false => ports.join(", "),
    };
    format!(
        "{node}'s proxy ({}) programmed {what} in {:.1} ms",
        mode.name(),
        elapsed.as_secs_f64() * 1e3
    )
}

/// The nftables mode's writer: where it writes, its netlink socket there,
/// and the rules it last wrote for each Service port (None: nothing yet,
/// or a failed write). It keeps the rules, not their rendering: a port's
/// table is rendered again when it changes, which costs microseconds,
/// where keeping every rendered chain of 10,000 Services would cost tens
/// of megabytes.
pub struct Nft {
    namespace: Option<String>,
    connection: Option<Connection>,
    applied: Option<BTreeMap<PortName, PortRules>>,
}

impl Nft {
    /// A writer into the named network namespace (None: its own).
    pub fn new(namespace: Option<String>) -> Nft {
        Nft {
            namespace,
            connection: None,
            applied: None,
        }
    }

    /// Brings the kernel to `rules`: for the ports of the `touched`
    /// Services, the difference from what was written; for every port,
    /// and the table afresh, when `full` or when nothing was written yet.
    /// The table's base goes through `nft -f` ([`nftables::base`]), every
    /// other operation over netlink. Answers how many operations it took.
    pub async fn sync(
        &mut self,
        rules: &BTreeMap<PortName, PortRules>,
        touched: &BTreeSet<ServiceKey>,
        full: bool,
    ) -> Result<usize, String> {
        // Taken while writing: a failed write leaves None, and the next
        // sync rewrites the table (with a new socket).
        let previous = self.applied.take().filter(|_| !full);
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => Connection::open(self.namespace.as_deref()).await?,
        };
        let mut out = Transactions::new(connection);
        let applied = match previous {
            Some(mut applied) => {
                let names: BTreeSet<PortName> = applied
                    .keys()
                    .chain(rules.keys())
                    .filter(|name| touched.contains(&name.service))
                    .cloned()
                    .collect();
                for name in names {
                    let new = rules.get(&name);
                    let old = applied.remove(&name);
                    let render =
                        |port: Option<&PortRules>| port.map(nftables::render).unwrap_or_default();
                    out.push(nftables::diff(&render(old.as_ref()), &render(new)))
                        .await?;
                    if let Some(new) = new {
                        applied.insert(name, new.clone());
                    }
                }
                applied
            }
            None => {
                let base = nftables::base();
                nft(
                    self.namespace.as_deref(),
                    &nftables::transactions(&base).concat(),
                )
                .await?;
                out.written += base.len();
                for port in rules.values() {
                    out.push(nftables::diff(&Table::default(), &nftables::render(port)))
                        .await?;
                }
                rules.clone()
            }
        };
        let (connection, operations) = out.finish().await?;
        self.connection = Some(connection);
        self.applied = Some(applied);
        Ok(operations)
    }
}

/// Operations on their way to the kernel, written as netlink batches of
/// [`nftables::MAX_OPERATIONS`] as they come, so that a first sync of
/// 10,000 Services never holds its 180,000 operations at once.
struct Transactions {
    /// None only while a batch is being written.
    connection: Option<Connection>,
    pending: Vec<Op>,
    written: usize,
}

impl Transactions {
    fn new(connection: Connection) -> Self {
        Transactions {
            connection: Some(connection),
            pending: Vec::new(),
            written: 0,
        }
    }

    async fn push(&mut self, ops: Vec<Op>) -> Result<(), String> {
        self.pending.extend(ops);
        while self.pending.len() >= nftables::MAX_OPERATIONS {
            let rest = self.pending.split_off(nftables::MAX_OPERATIONS);
            let batch = std::mem::replace(&mut self.pending, rest);
            self.write(batch).await?;
        }
        Ok(())
    }

    /// Writes `batch` from a blocking thread: the kernel commits it
    /// within the send. The socket stays where it was made, whichever
    /// thread uses it.
    async fn write(&mut self, batch: Vec<Op>) -> Result<(), String> {
        let mut connection = self
            .connection
            .take()
            .ok_or("nftables: the netlink socket was lost to a failed write")?;
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let result = connection.apply(&batch);
            (connection, result.map(|()| batch.len()))
        })
        .await
        .map_err(|e| format!("nftables: the netlink task failed: {e}"))?;
        self.connection = Some(connection);
        self.written += result?;
        Ok(())
    }

    /// Writes what is left; answers the socket and how many operations
    /// were written.
    async fn finish(mut self) -> Result<(Connection, usize), String> {
        let batch = std::mem::take(&mut self.pending);
        if !batch.is_empty() {
            self.write(batch).await?;
        }
        let connection = self
            .connection
            .ok_or("nftables: the netlink socket was lost to a failed write")?;
        Ok((connection, self.written))
    }
}

/// One mode's writer.
enum Writer {
    Ipvs(crate::ipvs::Ipvs),
    Nft(Nft),
    Userspace(Userspace),
}

impl Writer {
    async fn new(mode: Mode, config: &Config) -> Result<Writer, String> {
        let namespace = config.namespace.clone();
        Ok(match mode {
            Mode::Ipvs => Writer::Ipvs(crate::ipvs::Ipvs::new(namespace, config.scheduler.clone())),
            Mode::Nftables => Writer::Nft(Nft::new(namespace)),
            Mode::Userspace => {
                Writer::Userspace(Userspace::new(namespace, config.node.addresses.clone()).await?)
            }
        })
    }

    async fn sync(
        &mut self,
        rules: &BTreeMap<PortName, PortRules>,
        touched: &BTreeSet<ServiceKey>,
        full: bool,
    ) -> Result<usize, String> {
        match self {
            Writer::Ipvs(ipvs) => ipvs.sync(rules, touched, full).await,
            Writer::Nft(nft) => nft.sync(rules, touched, full).await,
            Writer::Userspace(userspace) => userspace.sync(rules, full).await,
        }
    }

    /// Whether removed real servers still drain (IPVS): a sync soon
    /// deletes those whose connections ended.
    fn draining(&self) -> bool {
        matches!(self, Writer::Ipvs(ipvs) if ipvs.draining())
    }
}

/// How often draining real servers are looked at again (kube-proxy: once
/// a minute; sooner here, so a drained one goes within seconds).
const DRAIN_CHECK: Duration = Duration::from_secs(2);

/// Runs `script` through `nft -f -` in the named network namespace (None:
/// this process's own): one transaction, all or nothing. Answers what nft
/// printed (a `list` command's listing).
pub async fn nft(namespace: Option<&str>, script: &str) -> Result<String, String> {
    run_in(namespace, "nft", &["-f", "-"], script, "nft (nftables)")
        .await
        .map_err(|e| format!("nft: {e}"))
}

/// Runs `program args` with `input` inside the named network namespace
/// (None: this process's own). The child is forked by a thread that
/// joined the namespace, and so starts there: no `ip netns exec`, whose
/// mount namespace and sysfs remount cost more than a small nft
/// transaction does.
pub async fn run_in(
    namespace: Option<&str>,
    program: &str,
    args: &[&str],
    input: &str,
    tool: &str,
) -> Result<String, String> {
    let mut command = std::process::Command::new(program);
    command.args(args);
    let (input, tool_name) = (input.to_owned(), tool.to_owned());
    crate::netns::within_named(namespace, move || Ok(feed(command, &input, &tool_name)))
        .await
        .map_err(|e| format!("cannot run {tool}: {e}"))?
}

/// Runs `command` with `input` on its standard input and answers its
/// standard output; its standard error is the error when it fails. `tool`
/// names it in messages. It blocks: call it from a thread that may wait.
pub fn feed(mut command: std::process::Command, input: &str, tool: &str) -> Result<String, String> {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    // Written from a thread of its own: a large listing fills the output
    // pipe while the input is still being written.
    let mut stdin = child.stdin.take();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || match stdin.as_mut() {
        Some(stdin) => stdin.write_all(input.as_bytes()),
        None => Ok(()),
    });
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{tool}: {e}"))?;
    // A write cut short (the tool ended early) shows in its status and
    // standard error, which say more.
    let _ = writer.join();
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
    }
}

/// Runs the proxy of `config.node` until its informers close.
pub async fn run(services: Informer<Service>, slices: Informer<EndpointSlice>, config: Config) {
    let mut service_events = services.subscribe();
    let mut slice_events = slices.subscribe();
    let mut state = State::default();
    let mode = match config.mode {
        Some(mode) => mode,
        None => {
            let (mode, why) = detect(config.namespace.as_deref()).await;
            tracing::info!(node = %config.node.name, mode = mode.name(), "proxy mode {}: {why}", mode.name());
            mode
        }
    };
    let mut writer = match Writer::new(mode, &config).await {
        Ok(writer) => writer,
        Err(e) => {
            tracing::error!(node = %config.node.name, mode = mode.name(), error = %e, "the proxy cannot start");
            return;
        }
    };
    let mut health = crate::health::Health::new(config.namespace.clone());
    let (mut services_synced, mut slices_synced) = (false, false);
    let mut full = true;
    let mut next_resync = Instant::now() + config.resync_period;
    let mut last_sync: Option<Instant> = None;
    let mut drain_check: Option<Instant> = None;
    loop {
        let drained = drain_check.unwrap_or(next_resync);
        tokio::select! {
            event = service_events.recv() => match event {
                Some(event) => services_synced |= record(&mut state, event, State::record_service),
                None => return,
            },
            event = slice_events.recv() => match event {
                Some(event) => slices_synced |= record(&mut state, event, State::record_slice),
                None => return,
            },
            _ = tokio::time::sleep_until(next_resync) => full = true,
            _ = tokio::time::sleep_until(drained), if drain_check.is_some() => {}
        }
        let drain_due = drain_check.is_some_and(|at| at <= Instant::now());
        if !(services_synced && slices_synced) || !(full || drain_due || state.changed()) {
            continue;
        }
        if let Some(last) = last_sync {
            let ready = last + config.min_sync_period;
            if Instant::now() < ready {
                tokio::time::sleep_until(ready).await;
            }
        }
        // What arrived meanwhile joins this sync.
        while let Ok(event) = service_events.try_recv() {
            record(&mut state, event, State::record_service);
        }
        while let Ok(event) = slice_events.try_recv() {
            record(&mut state, event, State::record_slice);
        }
        let started = Instant::now();
        let touched = state.apply(&config.node);
        if full {
            state.recompute_all(&config.node);
        }
        match writer.sync(&state.rules, &touched, full).await {
            Ok(operations) => {
                tracing::info!(
                    node = %config.node.name,
                    mode = mode.name(),
                    services = touched.len(),
                    operations,
                    full,
                    elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "proxy rules synced"
                );
                let report = !full && touched.len() <= EVENTS_UP_TO;
                full = false;
                next_resync = Instant::now() + config.resync_period;
                drain_check = writer.draining().then(|| Instant::now() + DRAIN_CHECK);
                if let Some(events) = config.events.as_ref().filter(|_| report) {
                    for key in &touched {
                        let Some(service) = services.get(&key.0, &key.1) else {
                            continue;
                        };
                        let message = synced_message(
                            key,
                            &state.rules,
                            mode,
                            &config.node.name,
                            started.elapsed(),
                        );
                        events.record(reference(&*service), Type::Normal, "RulesSynced", message);
                    }
                }
                if let Err(e) = health.sync(&state.rules).await {
                    tracing::warn!(node = %config.node.name, error = %e, "the service health server");
                }
            }
            Err(e) => {
                tracing::warn!(node = %config.node.name, error = %e, "the proxy's sync failed; the next one rewrites the table");
                full = true;
                next_resync = Instant::now() + Duration::from_secs(1);
            }
        }
        last_sync = Some(Instant::now());
    }
}

/// Records one informer event; answers whether it says the cache synced.
fn record<K>(
    state: &mut State,
    event: Event<K>,
    to: fn(&mut State, Option<&K>, Option<&K>),
) -> bool {
    match event {
        Event::Added(new) => to(state, None, Some(&new)),
        Event::Updated { old, new } => to(state, Some(&old), Some(&new)),
        Event::Deleted(old) => to(state, Some(&old), None),
        Event::Synced => return true,
    }
    false
}
