//! `skiff server`'s cluster DNS: its options, and its start beside the
//! apiserver as one more API client (named `skiff-dns`).

use std::net::SocketAddr;

use anyhow::Result;

/// Options of the cluster DNS.
#[derive(clap::Args)]
pub struct DnsArgs {
    /// Where cluster DNS answers, over UDP and TCP; port 0 picks a free
    /// port. (With the process runtime it also answers on the nodes' wire,
    /// 172.18.0.1:53, where pods reach it as kube-dns, 10.96.0.10:53.)
    #[arg(long, default_value = "127.0.0.1:1053")]
    dns_listen: SocketAddr,
    /// Names outside the cluster domain: `forward` to the host's
    /// nameservers (those of /etc/resolv.conf), or `refuse`.
    #[arg(long, value_enum, default_value_t = DnsUpstream::Forward)]
    dns_upstream: DnsUpstream,
    /// The cluster domain: Services are `<svc>.<ns>.svc.<domain>`.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DnsUpstream {
    Forward,
    Refuse,
}

/// Binds the cluster DNS, starts it, and answers its address (UDP and
/// TCP share the port) and the DNS, to answer on more sockets.
pub async fn start(
    informers: &skiff_runtime::Informers,
    args: &DnsArgs,
) -> Result<(SocketAddr, skiff_dns::Dns)> {
    let upstream = match args.dns_upstream {
        DnsUpstream::Forward => skiff_dns::Upstream::host(),
        DnsUpstream::Refuse => skiff_dns::Upstream::Refuse,
    };
    let dns = skiff_dns::Config {
        listen: args.dns_listen,
        domain: args.cluster_domain.clone(),
        upstream,
    };
    let (address, dns, serving) = skiff_dns::serve(informers, dns).await?;
    tokio::spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "the cluster DNS stopped");
        }
    });
    Ok((address, dns))
}
