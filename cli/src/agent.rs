//! The control plane's components beside the apiserver (scheduler,
//! controllers, simulated node agents), started inside `skiff server`, and
//! `skiff agent`, which runs node agents against a remote server.

use std::path::PathBuf;

use anyhow::Result;

use crate::cluster::client_as;
use skiff_kubelet_sim::node::Capacity;

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
}

impl NodeArgs {
    fn options(&self) -> skiff_kubelet_sim::Options {
        skiff_kubelet_sim::Options {
            first: self.first_node,
            count: self.nodes,
            total: self.first_node - 1 + self.nodes,
            capacity: Capacity {
                cpu: self.node_cpu.clone(),
                memory: self.node_memory.clone(),
                pods: self.node_pods,
            },
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

fn spawn_nodes(client: kube::Client, nodes: &NodeArgs) -> tokio::task::JoinHandle<()> {
    let options = nodes.options();
    tokio::spawn(async move {
        if let Err(e) = skiff_kubelet_sim::run(client, options).await {
            tracing::error!(error = %e, "the node agents stopped");
        }
    })
}

/// Starts the scheduler, the controllers and the node agents, each with a
/// client of its own that names it.
pub fn start_components(
    config: &kube::Config,
    nodes: &NodeArgs,
    controllers: &skiff_controllers::Options,
) -> Result<()> {
    let client = |component: &str| client_as(config, component);
    tokio::spawn(skiff_scheduler::run(client(skiff_scheduler::NAME)?));
    skiff_controllers::start(
        &|component| client(component).expect("a component name"),
        controllers,
    );
    if nodes.nodes > 0 {
        spawn_nodes(client("kubelet")?, nodes);
    }
    Ok(())
}

/// `skiff agent`: node agents in this process, for a server elsewhere
/// (reached with the kubeconfig).
pub async fn run(kubeconfig: Option<PathBuf>, args: AgentArgs) -> Result<()> {
    let config = crate::cluster::config(kubeconfig).await?;
    println!(
        "skiff agent running nodes {}..{}",
        args.nodes.first_node,
        args.nodes.first_node + args.nodes.nodes - 1
    );
    spawn_nodes(client_as(&config, "kubelet")?, &args.nodes).await?;
    Ok(())
}
