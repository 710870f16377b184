//! `skiff proxy rules`: what each node's proxy programmed, read back from
//! the kernel of the node's network namespace (not from the proxy's
//! memory): an `ipvsadm -Ln` listing in ipvs mode, the nftables table in
//! nftables mode, the redirects and listening sockets in userspace mode.

use anyhow::{Context, Result};

use crate::cluster::Cluster;
use crate::say;

/// `skiff proxy` commands.
#[derive(clap::Subcommand)]
pub enum Proxy {
    /// Print each node's proxy rules as the kernel holds them.
    Rules(RulesArgs),
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
    let Proxy::Rules(args) = command;
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
        let namespace = skiff_kubelet_sim::process::network::named_node_namespace(&node);
        let namespace = skiff_proxy::netns::path(&namespace)
            .exists()
            .then_some(namespace);
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
