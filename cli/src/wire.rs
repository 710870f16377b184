//! The control plane on the nodes' wire. With the process runtime, pods
//! reach the apiserver and cluster DNS as a cluster's pods do: through the
//! `kubernetes` (10.96.0.1:443) and `kube-dns` (10.96.0.10:53) Services,
//! which each node's proxy carries to the server's address on the wire
//! (172.18.0.1, in `skiff-cluster`). The server listens there besides its
//! own address, on sockets made inside that namespace, so nothing is routed
//! in the namespace it runs in.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use skiff_kubelet_sim::process::network;
use skiff_proxy::netns;

/// Where the API listens on the wire (kube-apiserver's secure port).
pub const API_PORT: u16 = 6443;
/// Where cluster DNS answers on the wire.
pub const DNS_PORT: u16 = 53;

/// The server's address on the wire.
pub fn address() -> IpAddr {
    network::CONTROL_PLANE.parse().expect("an address")
}

/// Where the API listens on the wire.
pub fn api() -> SocketAddr {
    SocketAddr::new(address(), API_PORT)
}

/// Where cluster DNS answers on the wire.
pub fn dns() -> SocketAddr {
    SocketAddr::new(address(), DNS_PORT)
}

/// The sockets the server listens on in the wire's namespace.
pub struct Listeners {
    /// The API's.
    pub api: std::net::TcpListener,
    /// Cluster DNS's.
    pub dns: skiff_dns::Sockets,
}

/// Binds the API and DNS sockets in the wire's namespace (which must be
/// up).
pub async fn bind() -> Result<Listeners> {
    let (api, dns) = (api(), dns());
    netns::within(network::path(network::CLUSTER), move || {
        let api = std::net::TcpListener::bind(api)?;
        api.set_nonblocking(true)?;
        let dns = skiff_dns::bind(dns).map_err(std::io::Error::other)?;
        Ok(Listeners { api, dns })
    })
    .await
    .with_context(|| format!("cannot listen on the nodes' wire ({api}, {dns})"))
}
