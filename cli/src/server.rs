//! `skiff server`: opens the store, makes sure the cluster's credentials and
//! default namespaces exist, serves the API over HTTPS, and shuts down
//! cleanly on SIGINT or SIGTERM with everything flushed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum_server::tls_rustls::RustlsConfig;
use skiff_api::services::{IpRange, PortRange};
use skiff_apiserver::{
    bootstrap, keep_published, publish_all, router, AppState, ServiceRanges, SystemService,
};
use skiff_store::{HistoryLimits, MvccStore, Store};

use crate::cluster::Transport;

use crate::pki;

/// Options of `skiff server`.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Where the store, the credentials and the kubeconfig live
    /// [default: $XDG_DATA_HOME/skiff, else ~/.local/share/skiff]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The address to serve HTTPS on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Watch history kept: at most this many events...
    #[arg(long, default_value_t = 100_000)]
    history_max_events: usize,
    /// ...and none older than this many seconds. A watch from a
    /// resourceVersion older than the history answers 410 Gone.
    #[arg(long, default_value_t = 300)]
    history_max_age_seconds: u64,
    /// The IPv4 range Services' ClusterIPs come from; the `kubernetes`
    /// Service takes its first address, `kube-dns` its tenth.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = IpRange::parse)]
    service_cidr: IpRange,
    /// The ports NodePort and LoadBalancer Services' node ports come from.
    #[arg(long, default_value = "30000-32767", value_parser = PortRange::parse)]
    service_node_port_range: PortRange,
    /// The addresses LoadBalancer Services get as their external IP. The
    /// default is loopback, so it never reaches the host's real network.
    #[arg(long, default_value = "127.240.0.0/24", value_parser = IpRange::parse)]
    load_balancer_pool: IpRange,
    #[command(flatten)]
    dns: crate::dns::DnsArgs,
    #[command(flatten)]
    nodes: crate::agent::NodeArgs,
}

/// The default data directory.
pub fn default_data_dir() -> Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("skiff"));
    }
    let home = std::env::var_os("HOME")
        .context("neither XDG_DATA_HOME nor HOME is set; pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/skiff"))
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

pub async fn run(args: ServerArgs) -> Result<()> {
    let started = Instant::now();
    args.nodes.check()?;
    skiff_apiserver::prepare_types();
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let limits = HistoryLimits {
        max_events: args.history_max_events,
        max_age: Duration::from_secs(args.history_max_age_seconds),
    };
    let store = Arc::new(MvccStore::open(&data_dir.join("store"), limits)?);
    // In-cluster clients dial the `kubernetes` Service's first ClusterIP;
    // with the process runtime, the server also answers on the nodes'
    // wire, and at the host's address there (`--host-routes`).
    let host_address: std::net::IpAddr = skiff_kubelet_sim::process::network::HOST_ADDRESS
        .parse()
        .expect("an address");
    let addresses = [
        args.listen.ip(),
        std::net::IpAddr::V4(args.service_cidr.ip(0)),
        crate::wire::address(),
        host_address,
    ];
    let credentials = pki::load_or_create(&data_dir.join("pki"), &addresses)?;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = RustlsConfig::from_pem(
        credentials.cert_pem.clone().into_bytes(),
        credentials.key_pem.clone().into_bytes(),
    )
    .await
    .context("cannot load the serving certificate")?;
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let host = if address.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        address.ip().to_string()
    };
    let url = format!("https://{host}:{}", address.port());
    let kubeconfig = pki::write_kubeconfig(&data_dir, &url, &credentials)?;
    let shared: Arc<dyn Store> = store.clone();
    let (signing, public) = &credentials.service_account;
    let state = AppState::new(shared)
        .with_service_account_key(signing, public)
        .map_err(|e| anyhow::anyhow!(e))?
        .with_token(&credentials.token)
        .with_service_ranges(ServiceRanges {
            cidr: args.service_cidr,
            node_ports: args.service_node_port_range,
        });
    bootstrap(&state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bootstrap the cluster: {e}"))?;
    let router = router(state.clone());
    // The control plane's other components are API clients of this server,
    // as in Kubernetes, with the admin's credentials; their requests go
    // into its router without a socket in between. Cluster DNS binds
    // first, so that its address is known before anything is published.
    let config = crate::cluster::config(Some(kubeconfig.clone())).await?;
    let transport = Transport::InProcess(config, router.clone());
    // One informer set for the process: each kind is watched once, and the
    // scheduler, controllers, DNS and node agents all read from it (each
    // writes with a client of its own).
    let informers = crate::agent::informers(&transport)?;
    let (dns_address, dns) = crate::dns::start(&informers, &args.dns).await?;
    let local = |ip: std::net::IpAddr| match ip.is_unspecified() {
        true => std::net::IpAddr::from([127, 0, 0, 1]),
        false => ip,
    };
    let system = system_services(
        SocketAddr::new(local(address.ip()), address.port()),
        SocketAddr::new(local(dns_address.ip()), dns_address.port()),
    );
    // Published before the API serves, then kept so.
    publish_all(&state, &system).await;
    let (moved, published) = tokio::sync::watch::channel(system);
    tokio::spawn(keep_published(
        state.clone(),
        published,
        Duration::from_secs(10),
    ));
    tokio::spawn(skiff_apiserver::repair_allocations(
        state.clone(),
        Duration::from_secs(180),
    ));

    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    // TCP_NODELAY: a watch event is a small write that must not wait for
    // the ACK of the one before (Nagle), or watchers lag by tens of ms.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    let serve = move |listener: std::net::TcpListener| {
        axum_server::from_tcp(listener)
            .acceptor(acceptor.clone())
            .handle(handle.clone())
            .serve(router.clone().into_make_service())
    };
    let server = tokio::spawn(serve(listener));
    println!(
        "skiff server ready at {url} in {} ms; dns: {dns_address}; kubeconfig: {}",
        started.elapsed().as_millis(),
        kubeconfig.display()
    );
    // The API is up; its clients start beside it.
    let controllers = skiff_controllers::Options {
        load_balancer_pool: args.load_balancer_pool,
        root_ca: credentials.ca_pem.clone(),
    };
    let nodes = args.nodes.with_data_dir(&data_dir);
    let wired = Arc::new(tokio::sync::Notify::new());
    crate::agent::start_components(&transport, &informers, &nodes, &controllers, wired.clone())?;
    if nodes.processes() {
        // Pods reach the API and DNS through the wire, once it is up.
        tokio::spawn(async move {
            wired.notified().await;
            match crate::wire::bind().await {
                Ok(listeners) => {
                    tokio::spawn(serve(listeners.api));
                    match dns.answer_on(listeners.dns) {
                        Ok(answering) => drop(tokio::spawn(answering)),
                        Err(e) => {
                            tracing::error!(error = %e, "cluster DNS cannot answer on the nodes' wire")
                        }
                    }
                    moved.send_replace(system_services(crate::wire::api(), crate::wire::dns()));
                }
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "pods cannot reach the control plane"
                ),
            }
        });
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        // Watches are long requests: give the rest a moment, then close.
        stopping.graceful_shutdown(Some(Duration::from_secs(2)));
    });
    server
        .await
        .context("the HTTPS server stopped")?
        .context("the HTTPS server failed")?;
    if nodes.processes() {
        // The pods' processes and namespaces go with the server.
        skiff_kubelet_sim::process::cleanup(nodes.runtime_dir()).await;
    }
    // The last reference: dropping it flushes and checkpoints the store.
    drop(store);
    tracing::info!("skiff server stopped; the store is flushed");
    Ok(())
}

/// The Services the cluster itself provides, with the addresses where the
/// API and cluster DNS listen.
fn system_services(api: SocketAddr, dns: SocketAddr) -> Vec<SystemService<'static>> {
    vec![
        SystemService {
            namespace: "default",
            name: "kubernetes",
            labels: serde_json::json!({"component": "apiserver", "provider": "kubernetes"}),
            ip_index: 0,
            ports: &[("https", 443, "TCP")],
            address: api.ip(),
            target_port: api.port(),
        },
        SystemService {
            namespace: "kube-system",
            name: "kube-dns",
            labels: serde_json::json!({"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "skiff-dns"}),
            ip_index: 9,
            ports: &[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")],
            address: dns.ip(),
            target_port: dns.port(),
        },
    ]
}
