//! Skiff's cluster DNS, as CoreDNS's `kubernetes` plugin answers it:
//!
//! - `<svc>.<ns>.svc.<domain>`: A/AAAA, the Service's cluster IPs; for a
//!   headless Service (`clusterIP: None`), the ready addresses of its
//!   EndpointSlices; for an ExternalName Service, a CNAME;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for each named port
//!   (the Service's name as target, or each endpoint of a headless
//!   Service), the targets' addresses in the additional section;
//! - `<host>.<svc>.<ns>.svc.<domain>`: an endpoint of a headless Service
//!   by its `hostname` (a pod's `spec.hostname` under `spec.subdomain`) or
//!   by its address with dashes;
//! - other names inside the domain: NXDOMAIN, or NODATA for a name that
//!   exists, with the SOA; names outside it: forwarded or refused.
//!
//! The answers come from an [`Index`] kept by watches of Services and
//! EndpointSlices through the apiserver, never from a read per query;
//! [`Index::answer`] is pure. UDP and TCP share one port; an answer larger
//! than a UDP client's limit (512 bytes, or its EDNS size) is truncated
//! with the TC bit, and the client retries over TCP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::proto::rr::Name;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use skiff_runtime::Informers;

mod forward;
mod index;
mod server;

pub use forward::nameservers;
pub use index::{Answer, Index, SERVICE_NAME_LABEL, TTL};

/// The component name its API client carries.
pub const NAME: &str = "skiff-dns";

/// How long a TCP connection may stay idle.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// UDP receive loops, each with a socket of its own on the port: one per
/// core of this machine's size keeps both busy under load.
const UDP_LOOPS: usize = 2;

/// Tries at binding UDP and TCP to one free port when port 0 is asked.
const BIND_ATTEMPTS: usize = 20;

/// Where names outside the cluster domain go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// To these nameservers, in order (no nameserver: refused).
    Forward(Vec<SocketAddr>),
    /// Refused.
    Refuse,
}

impl Upstream {
    /// The host's resolvers: the nameservers of `/etc/resolv.conf` (none if
    /// it cannot be read).
    pub fn host() -> Upstream {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        Upstream::Forward(nameservers(&text))
    }
}

/// What to serve, and where.
#[derive(Debug, Clone)]
pub struct Config {
    /// The UDP and TCP address; port 0 picks a port free for both.
    pub listen: SocketAddr,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// Where names outside the domain go.
    pub upstream: Upstream,
}

/// Why the DNS server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster domain is not a DNS name.
    #[error("the cluster domain {domain:?} is not a DNS name")]
    Domain {
        /// The domain given.
        domain: String,
        /// Why it is not a name.
        #[source]
        source: hickory_server::proto::ProtoError,
    },
    /// The UDP or TCP socket could not be bound.
    #[error("cannot listen for DNS on {address}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The TCP listener failed while serving.
    #[error("the DNS server stopped")]
    Serve(#[source] hickory_server::net::NetError),
    /// The UDP socket failed while serving.
    #[error("the DNS server's UDP socket failed")]
    Udp(#[source] std::io::Error),
}

/// The sockets the DNS answers on: a UDP socket per receive loop and a
/// TCP listener, all on one address.
pub struct Sockets {
    udp: Vec<std::net::UdpSocket>,
    tcp: std::net::TcpListener,
    address: SocketAddr,
}

impl Sockets {
    /// Where they are bound (the port is the same for UDP and TCP).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// A running cluster DNS: one index, answered on every [`Sockets`] it is
/// given (a socket answers in the network namespace it was made in).
#[derive(Clone)]
pub struct Dns {
    handler: server::Handler,
}

impl Dns {
    /// Answers on `sockets` too; runs until they fail.
    pub fn answer_on(
        &self,
        sockets: Sockets,
    ) -> Result<impl Future<Output = Result<(), Error>> + Send, Error> {
        let failed = |source| Error::Bind {
            address: sockets.address,
            source,
        };
        let udp = sockets
            .udp
            .into_iter()
            .map(|socket| tokio::net::UdpSocket::from_std(socket).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        let mut tcp_server = hickory_server::Server::new(self.handler.clone());
        tcp_server.register_listener(
            tokio::net::TcpListener::from_std(sockets.tcp).map_err(failed)?,
            TCP_IDLE,
            64,
        );
        let handler = self.handler.clone();
        Ok(async move {
            let mut udp_loops = tokio::task::JoinSet::new();
            for socket in udp {
                udp_loops.spawn(server::serve_udp(socket, handler.clone()));
            }
            tokio::select! {
                done = tcp_server.block_until_done() => done.map_err(Error::Serve),
                Some(failed) = udp_loops.join_next() => {
                    Err(Error::Udp(failed.unwrap_or_else(std::io::Error::other)))
                }
            }
        })
    }
}

/// Binds UDP and TCP on `config.listen` and answers there from an index
/// kept from the process's shared `informers` of Services and
/// EndpointSlices. Returns the bound address (the port is the same for UDP
/// and TCP), the [`Dns`] (to answer on more sockets) and the future that
/// serves and follows the informers; it runs until the sockets fail.
pub async fn serve(
    informers: &Informers,
    config: Config,
) -> Result<
    (
        SocketAddr,
        Dns,
        impl Future<Output = Result<(), Error>> + Send,
    ),
    Error,
> {
    let domain = Name::from_ascii(&config.domain).map_err(|source| Error::Domain {
        domain: config.domain.clone(),
        source,
    })?;
    let sockets = bind(config.listen)?;
    let address = sockets.address;
    let index = Arc::new(RwLock::new(Index::new(domain)));
    let (services, slices) = (informers.get::<Service>(), informers.get::<EndpointSlice>());
    let upstreams = match config.upstream {
        // Never ourselves: that would be a loop.
        Upstream::Forward(list) => Some(list.into_iter().filter(|u| *u != address).collect())
            .filter(|list: &Arc<[SocketAddr]>| !list.is_empty()),
        Upstream::Refuse => None,
    };
    let dns = Dns {
        handler: server::Handler {
            index: index.clone(),
            upstreams,
        },
    };
    let answering = dns.answer_on(sockets)?;
    let running = async move {
        let services = server::watch(services, index.clone());
        let slices = server::watch(slices, index);
        tokio::select! {
            done = answering => done,
            _ = futures::future::join(services, slices) => Ok(()),
        }
    };
    Ok((address, dns, running))
}

/// A UDP socket per receive loop and a TCP listener, on one port (when
/// port 0 is asked, the first port free for both).
pub fn bind(listen: SocketAddr) -> Result<Sockets, Error> {
    let failed = |source| Error::Bind {
        address: listen,
        source,
    };
    for _ in 0..BIND_ATTEMPTS {
        let first = udp_socket(listen).map_err(failed)?;
        let address = first.local_addr().map_err(failed)?;
        match std::net::TcpListener::bind(address) {
            Ok(tcp) => {
                tcp.set_nonblocking(true).map_err(failed)?;
                let mut udp = vec![first];
                for _ in 1..UDP_LOOPS {
                    udp.push(udp_socket(address).map_err(failed)?);
                }
                return Ok(Sockets { udp, tcp, address });
            }
            Err(e) if listen.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(failed(e)),
        }
    }
    Err(failed(std::io::Error::from(std::io::ErrorKind::AddrInUse)))
}

/// A non-blocking UDP socket bound to `address` with SO_REUSEPORT, so that
/// each receive loop has a socket of its own on the port and the kernel
/// spreads the clients over them (only sockets of the same user can join).
fn udp_socket(address: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, None)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_binds_udp_and_tcp_on_one_port() {
        let sockets = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(sockets.udp.len(), UDP_LOOPS);
        for socket in &sockets.udp {
            assert_eq!(socket.local_addr().unwrap(), sockets.address);
        }
        assert_eq!(sockets.tcp.local_addr().unwrap(), sockets.address);
        assert_ne!(sockets.address.port(), 0);
    }

    #[test]
    fn a_port_in_use_is_refused_rather_than_shared_with_another_server() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(matches!(bind(first.address()), Err(Error::Bind { .. })));
    }
}
