//! `skiff proxy rules`: what each node's proxy programmed, read back from
//! the kernel of the node's network namespace (not from the proxy's
//! memory): an `ipvsadm -Ln` listing in ipvs mode, the nftables table in
//! nftables mode, the redirects and listening sockets in userspace mode.
//!
//! `skiff proxy run`: one node's proxy as a process of its own, as
//! kube-proxy runs on a node: for nodes whose agent runs none
//! (`--proxy-mode none`), or to restart one. A new proxy reads what the
//! kernel holds and rebuilds the same rules; established connections
//! keep their NAT (conntrack) or IPVS connection entries meanwhile.

use anyhow::{Context, Result};

use crate::cluster::Cluster;
use crate::say;

/// `skiff proxy` commands.
#[derive(clap::Subcommand)]
pub enum Proxy {
    /// Print each node's proxy rules as the kernel holds them.
    Rules(RulesArgs),
    /// Run one node's proxy until interrupted.
    Run(RunArgs),
}

/// Options of `skiff proxy run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The node whose proxy this is: its endpoints are local, its
    /// InternalIP answers node ports.
    #[arg(long)]
    node: String,
    /// The network namespace to program [default: the node's own, where
    /// Skiff runs its pods, else this process's].
    #[arg(long)]
    netns: Option<String>,
    #[command(flatten)]
    proxy: crate::agent::ProxyArgs,
}

/// Options of `skiff proxy rules`.
#[derive(clap::Args)]
pub struct RulesArgs {
    /// Only this node [default: every node].
    #[arg(long)]
    node: Option<String>,
}

/// Runs a `skiff proxy` command.
pub async fn run(cluster: &Cluster, command: Proxy) -> Result<()> {
    match command {
        Proxy::Rules(args) => rules(cluster, args).await,
        Proxy::Run(args) => run_one(cluster, args).await,
    }
}

/// The network namespace of node `node`'s pods, if Skiff made one.
fn node_namespace(node: &str) -> Option<String> {
    let namespace = skiff_kubelet_sim::process::network::named_node_namespace(node);
    skiff_proxy::netns::path(&namespace)
        .exists()
        .then_some(namespace)
}

async fn run_one(cluster: &Cluster, args: RunArgs) -> Result<()> {
    let Some(proxy) = args.proxy.proxy(true) else {
        anyhow::bail!("--proxy-mode none: there is no proxy to run");
    };
    let node = cluster
        .get(&format!("/api/v1/nodes/{}", args.node))
        .await
        .with_context(|| format!("cannot find node {}", args.node))?;
    let address = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str()?.parse().ok());
    let namespace = args.netns.or_else(|| node_namespace(&args.node));
    let config =
        skiff_kubelet_sim::proxy_config(&cluster.client, &args.node, address, &proxy, namespace);
    let informers = skiff_runtime::Informers::new(cluster.client.clone());
    let proxy = skiff_proxy::run::run(informers.get(), informers.get(), config);
    tokio::select! {
        () = proxy => anyhow::bail!("the proxy of node {} stopped: its watches closed", args.node),
        interrupted = tokio::signal::ctrl_c() => interrupted.context("waiting for Ctrl-C"),
    }
}

async fn rules(cluster: &Cluster, args: RulesArgs) -> Result<()> {
    let nodes = match args.node {
        Some(node) => vec![node],
        None => {
            let list = cluster.get("/api/v1/nodes").await?;
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
                .collect()
        }
    };
    let many = nodes.len() > 1;
    for node in nodes {
        // A node with real pods has a namespace of its own; one that runs
        // in Skiff's namespace (a mode named for one simulated node) not.
        let namespace = node_namespace(&node);
        let (mode, listing) = skiff_proxy::readback::read_back(namespace.as_deref())
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("cannot read node {node}'s proxy rules"))?;
        if many {
            say!("# node {node}: {} mode", mode.name());
        }
        crate::write_out(format_args!("{listing}"));
    }
    Ok(())
}
