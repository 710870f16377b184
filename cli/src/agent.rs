//! The control plane's components beside the apiserver (scheduler,
//! controllers, simulated node agents), started inside `skiff server`, and
//! `skiff agent`, which runs node agents against a remote server.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::Notify;

use crate::cluster::Transport;
use skiff_kubelet_sim::node::Capacity;
use skiff_runtime::Informers;

/// The simulated nodes to run.
#[derive(clap::Args, Clone)]
pub struct NodeArgs {
    /// How many simulated nodes (skiff-node-1..N) to run.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// The first node's index (for agents that run part of a cluster).
    #[arg(long, default_value_t = 1)]
    first_node: u32,
    /// The CPUs each node offers.
    #[arg(long, default_value = "8")]
    node_cpu: String,
    /// The memory each node offers.
    #[arg(long, default_value = "32Gi")]
    node_memory: String,
    /// The pods each node takes.
    #[arg(long, default_value_t = 110)]
    node_pods: u32,
    /// What runs the pods: `sim` (simulated: no processes, thousands of
    /// nodes) or `process` (real processes in network namespaces of their
    /// own, with a real pod network; needs root).
    #[arg(long, default_value = "sim", value_parser = ["sim", "process"])]
    runtime: String,
    /// Where the process runtime keeps pods' logs and files [default: the
    /// data directory's `kubelet`].
    #[arg(long)]
    runtime_dir: Option<PathBuf>,
    /// With the process runtime: give the namespace Skiff runs in (the
    /// host's, unless you started it in another) an address on the nodes'
    /// wire (172.18.255.254) and a route to every node's pod CIDR, so that
    /// `curl POD_IP` works from it. Off by default: pod and node ranges are
    /// otherwise routed only inside Skiff's own namespaces.
    #[arg(long)]
    host_routes: bool,
    /// Where the nodes' kubelet server listens for the apiserver (logs,
    /// exec, port-forward); port 0 picks a free port. The address is
    /// published in each Node.
    #[arg(long, default_value = "127.0.0.1:0")]
    kubelet_listen: std::net::SocketAddr,
    #[command(flatten)]
    proxy: ProxyArgs,
}

/// The node proxy's options, of `skiff server` and `skiff agent` (every
/// node's) and of `skiff proxy run` (one node's).
#[derive(clap::Args, Clone)]
pub struct ProxyArgs {
    /// The node proxy that makes Services carry traffic, in each node's
    /// namespace: `ipvs` (IPVS virtual servers, as kube-proxy's ipvs
    /// mode), `nftables` (a kube-proxy-shaped table), `userspace` (the
    /// proxy carries each connection itself), `none`, or `auto`: with the
    /// process runtime, ipvs where the kernel has it, else nftables, else
    /// userspace; with the simulated one none, whose pods have nothing to
    /// carry traffic to. A mode named with the simulated runtime programs
    /// the namespace Skiff runs in, for one node.
    #[arg(long, default_value = "auto", value_parser = ["auto", "ipvs", "nftables", "userspace", "none"])]
    proxy_mode: String,
    /// The IPVS scheduler of the ipvs mode: rr, wrr, lc, wlc, sh, dh,
    /// sed, nq or mh.
    #[arg(long, default_value = "rr", value_parser = ["rr", "wrr", "lc", "wlc", "sh", "dh", "sed", "nq", "mh"])]
    ipvs_scheduler: String,
    /// At least this many seconds between two syncs of a node's proxy
    /// (kube-proxy's minSyncPeriod; 0: every batch of changes at once).
    #[arg(long, default_value_t = 0.0)]
    proxy_min_sync_period: f64,
}

impl ProxyArgs {
    /// The proxy these options ask for. `auto` detects each node's mode
    /// where `detects` (real pods, or a proxy run by hand), and is none
    /// otherwise; `none` is none.
    pub fn proxy(&self, detects: bool) -> Option<skiff_kubelet_sim::Proxy> {
        use skiff_proxy::run::Mode;
        let mode = match self.proxy_mode.as_str() {
            "auto" if detects => None,
            "ipvs" => Some(Mode::Ipvs),
            "nftables" => Some(Mode::Nftables),
            "userspace" => Some(Mode::Userspace),
            _ => return None,
        };
        Some(skiff_kubelet_sim::Proxy {
            mode,
            scheduler: self.ipvs_scheduler.clone(),
            min_sync_period: std::time::Duration::from_secs_f64(
                self.proxy_min_sync_period.max(0.0),
            ),
        })
    }

    /// Whether a mode is named (not `auto` or `none`).
    fn named(&self) -> bool {
        !matches!(self.proxy_mode.as_str(), "auto" | "none")
    }
}

impl NodeArgs {
    /// Whether the pods are real processes.
    pub fn processes(&self) -> bool {
        self.runtime == "process"
    }

    /// Refuses a runtime this process cannot run, before anything starts.
    pub fn check(&self) -> Result<()> {
        if self.processes() {
            skiff_kubelet_sim::process::check().map_err(anyhow::Error::msg)?;
        } else if self.proxy.named() && self.nodes != 1 {
            anyhow::bail!(
                "--proxy-mode {} with the simulated runtime programs the namespace Skiff runs in, for one node: pass --nodes 1, or --runtime process",
                self.proxy.proxy_mode
            );
        }
        Ok(())
    }

    /// The process runtime's directory.
    pub fn runtime_dir(&self) -> &std::path::Path {
        self.runtime_dir
            .as_deref()
            .unwrap_or(std::path::Path::new("kubelet"))
    }

    /// Fills in the runtime's directory under `data_dir` if none was given.
    pub fn with_data_dir(mut self, data_dir: &std::path::Path) -> Self {
        self.runtime_dir
            .get_or_insert_with(|| data_dir.join("kubelet"));
        self
    }

    fn options(
        &self,
        token: Option<String>,
        wired: Option<Arc<Notify>>,
    ) -> skiff_kubelet_sim::Options {
        let runtime = match self.processes() {
            true => skiff_kubelet_sim::Choice::Process {
                root: self.runtime_dir().to_owned(),
                host_routes: self.host_routes,
            },
            false => skiff_kubelet_sim::Choice::Sim,
        };
        skiff_kubelet_sim::Options {
            first: self.first_node,
            count: self.nodes,
            total: self.first_node - 1 + self.nodes,
            capacity: Capacity {
                cpu: self.node_cpu.clone(),
                memory: self.node_memory.clone(),
                pods: self.node_pods,
            },
            runtime,
            kubelet_listen: self.kubelet_listen,
            kubelet_token: token,
            proxy: self.proxy.proxy(self.processes()),
            wired,
            ..skiff_kubelet_sim::Options::default()
        }
    }
}

/// Options of `skiff agent`.
#[derive(clap::Args)]
pub struct AgentArgs {
    #[command(flatten)]
    nodes: NodeArgs,
}

/// The User-Agent of the process's shared watches.
pub const INFORMERS: &str = "skiff-informers";

/// The process's informer set, watching as [`INFORMERS`].
pub fn informers(transport: &Transport) -> Result<Informers> {
    Ok(Informers::new(transport.client(INFORMERS)?))
}

fn spawn_nodes(
    transport: &Transport,
    informers: &Informers,
    nodes: &NodeArgs,
    wired: Option<Arc<Notify>>,
) -> Result<tokio::task::JoinHandle<()>> {
    let client = transport.client("kubelet")?;
    let options = nodes.options(transport.token(), wired);
    let running = skiff_kubelet_sim::run(client, informers, options);
    Ok(tokio::spawn(async move {
        if let Err(e) = running.await {
            tracing::error!(error = %e, "the node agents stopped");
        }
    }))
}

/// Starts the scheduler, the controllers and the node agents, each with a
/// client of its own that names it, all reading from `informers`; `wired`
/// is told when the process runtime's nodes' wire is up.
pub fn start_components(
    transport: &Transport,
    informers: &Informers,
    nodes: &NodeArgs,
    controllers: &skiff_controllers::Options,
    wired: Arc<Notify>,
) -> Result<()> {
    let client = |component: &str| transport.client(component);
    tokio::spawn(skiff_scheduler::run(
        client(skiff_scheduler::NAME)?,
        informers.get(),
        informers.get(),
    ));
    if nodes.nodes > 0 {
        spawn_nodes(transport, informers, nodes, Some(wired))?;
    }
    // Last: the garbage collector's metadata views reuse the full
    // informers asked for before.
    skiff_controllers::start(
        &|component| client(component).expect("a component name"),
        informers,
        controllers,
    );
    Ok(())
}

/// `skiff agent`: node agents in this process, for a server elsewhere
/// (reached with the kubeconfig), with an informer set of their own.
pub async fn run(kubeconfig: Option<PathBuf>, args: AgentArgs) -> Result<()> {
    args.nodes.check()?;
    let transport = Transport::Network(crate::cluster::config(kubeconfig).await?);
    println!(
        "skiff agent running nodes {}..{}",
        args.nodes.first_node,
        args.nodes.first_node + args.nodes.nodes - 1
    );
    let informers = informers(&transport)?;
    let nodes = args
        .nodes
        .with_data_dir(&crate::server::default_data_dir()?.join("agent"));
    spawn_nodes(&transport, &informers, &nodes, None)?.await?;
    Ok(())
}
