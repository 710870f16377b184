//! The userspace mode, the first kube-proxy had
//! (`pkg/proxy/userspace`, removed upstream in 1.26): the proxy itself
//! carries every connection. Each address of the desired state gets a
//! socket of its own; a connection or datagram that reaches it goes on to
//! one of the Service's endpoints, round robin, or to the same endpoint
//! for a client under ClientIP affinity.
//!
//! - An address the node holds (its own addresses, for node ports, and
//!   loopback ones, as load-balancer IPs are by default) is listened on
//!   directly, which needs no privilege beyond the port's.
//! - Any other (ClusterIPs, external IPs) is listened on at a free port of
//!   the node, and a `redirect` in the proxy's nftables table (`ip
//!   skiff-proxy`, map `userspace-ports`, keyed `daddr . l4proto . dport`)
//!   sends its traffic there; that takes root, and without it those
//!   addresses are left out, once said.
//! - TCP is copied both ways; UDP keeps a session (a socket towards the
//!   endpoint) per client until it is idle for [`UDP_IDLE`].
//!
//! Sockets are made inside the node's network namespace by a thread that
//! joined it (a socket belongs to the namespace it was made in), so the
//! proxy serves a node from anywhere in the process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::model::{Address, PortName, PortRules, Protocol, Virtual};
use crate::nftables::TABLE;

/// How long a UDP session lives without traffic (kube-proxy's userspace
/// `--udp-timeout` default).
pub const UDP_IDLE: Duration = Duration::from_millis(250);

/// How long a connection to one endpoint may take before the next is
/// tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How many endpoints one connection tries (kube-proxy's userspace proxy
/// retried with backoff; here each candidate once, up to this many).
const CONNECT_TRIES: usize = 4;

/// The map of redirected addresses in the proxy's table.
pub const PORTS_MAP: &str = "userspace-ports";

/// The set of refused addresses in the proxy's table (the nftables
/// mode's name).
pub const REFUSED_SET: &str = "no-endpoint-services";

/// Where one address's connections go: its endpoints in round-robin
/// order, and with ClientIP affinity the endpoint each client last used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    backends: Vec<SocketAddr>,
    next: usize,
    affinity: Option<Duration>,
    clients: HashMap<IpAddr, (SocketAddr, Instant)>,
}

impl Pool {
    /// The pool of `virtual`.
    pub fn new(virtual_server: &Virtual) -> Pool {
        let mut pool = Pool {
            backends: Vec::new(),
            next: 0,
            affinity: None,
            clients: HashMap::new(),
        };
        pool.update(virtual_server);
        pool
    }

    /// Follows a change of endpoints or affinity: clients stay with an
    /// endpoint that remains.
    pub fn update(&mut self, virtual_server: &Virtual) {
        self.backends = virtual_server
            .backends
            .iter()
            .map(|b| SocketAddr::from((b.ip, b.port)))
            .collect();
        self.affinity = virtual_server
            .affinity
            .map(|seconds| Duration::from_secs(seconds.into()));
        if self.affinity.is_none() {
            self.clients.clear();
        }
        let backends = &self.backends;
        self.clients.retain(|_, (b, _)| backends.contains(b));
    }

    /// The endpoints to try for `client`, the first choice first: its
    /// affinity's endpoint while that holds, else the next in turn.
    pub fn choose(&mut self, client: IpAddr, now: Instant) -> Vec<SocketAddr> {
        if self.backends.is_empty() {
            return Vec::new();
        }
        let sticky = self.affinity.and_then(|timeout| {
            let (backend, used) = self.clients.get(&client)?;
            (now.duration_since(*used) < timeout).then_some(*backend)
        });
        let start = match sticky.and_then(|b| self.backends.iter().position(|x| *x == b)) {
            Some(index) => index,
            None => {
                let index = self.next % self.backends.len();
                self.next = (index + 1) % self.backends.len();
                index
            }
        };
        let n = self.backends.len();
        (0..n.min(CONNECT_TRIES))
            .map(|i| self.backends[(start + i) % n])
            .collect()
    }

    /// Records that `client` reached `backend` (its affinity, if any).
    pub fn used(&mut self, client: IpAddr, backend: SocketAddr, now: Instant) {
        if self.affinity.is_some() {
            self.clients.insert(client, (backend, now));
        }
    }
}

/// Whether the node holds `ip` itself (so it is listened on directly).
pub fn held(ip: Ipv4Addr, node: &[Ipv4Addr]) -> bool {
    ip.is_loopback() || node.contains(&ip)
}

/// What the userspace mode writes into its nftables table: where each
/// address it does not hold is redirected (the local port of its
/// socket), and which such addresses have no endpoint and are refused at
/// once, as in the other modes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redirects {
    /// `userspace-ports`: address to local port.
    pub ports: BTreeMap<Address, u16>,
    /// `no-endpoint-services`: refused.
    pub refused: BTreeSet<Address>,
}

/// The nftables operations that bring the table from `old` (None:
/// nothing written yet: the table afresh) to `new`.
pub fn redirect_ops(old: Option<&Redirects>, new: &Redirects) -> Vec<String> {
    let t = format!("ip {TABLE}");
    let key = |a: &Address| format!("{} . {} . {}", a.ip, a.protocol.name(), a.port);
    let mut ops = Vec::new();
    let empty = Redirects::default();
    let old = match old {
        Some(old) => old,
        None => {
            let key = "type ipv4_addr . inet_proto . inet_service";
            ops.extend([
                format!("add table {t}"),
                format!("delete table {t}"),
                format!("add table {t}"),
                format!("add map {t} {PORTS_MAP} {{ {key} : inet_service ; }}"),
                format!("add set {t} {REFUSED_SET} {{ {key} ; }}"),
            ]);
            let redirect = format!("meta l4proto {{ tcp, udp, sctp }} redirect to : ip daddr . meta l4proto . th dport map @{PORTS_MAP}");
            let reject =
                format!("ct state new ip daddr . meta l4proto . th dport @{REFUSED_SET} reject");
            for (chain, kind, hook, priority, rule) in [
                ("filter-prerouting", "filter", "prerouting", -110, &reject),
                ("filter-output", "filter", "output", -110, &reject),
                ("nat-prerouting", "nat", "prerouting", -100, &redirect),
                ("nat-output", "nat", "output", -100, &redirect),
            ] {
                ops.push(format!(
                    "add chain {t} {chain} {{ type {kind} hook {hook} priority {priority} ; }}"
                ));
                ops.push(format!("add rule {t} {chain} {rule}"));
            }
            &empty
        }
    };
    for (address, port) in &old.ports {
        if new.ports.get(address) != Some(port) {
            ops.push(format!(
                "delete element {t} {PORTS_MAP} {{ {} }}",
                key(address)
            ));
        }
    }
    for address in old.refused.difference(&new.refused) {
        ops.push(format!(
            "delete element {t} {REFUSED_SET} {{ {} }}",
            key(address)
        ));
    }
    for (address, port) in &new.ports {
        if old.ports.get(address) != Some(port) {
            ops.push(format!(
                "add element {t} {PORTS_MAP} {{ {} : {port} }}",
                key(address)
            ));
        }
    }
    for address in new.refused.difference(&old.refused) {
        ops.push(format!(
            "add element {t} {REFUSED_SET} {{ {} }}",
            key(address)
        ));
    }
    ops
}

/// Makes sockets inside one network namespace: a thread that joined it
/// answers each request (a socket stays in the namespace it was made in,
/// whoever uses it after).
#[derive(Clone)]
struct Factory {
    requests:
        Option<std::sync::mpsc::Sender<(Type, tokio::sync::oneshot::Sender<io::Result<Socket>>)>>,
}

impl Factory {
    /// A factory for the named namespace (None: this thread's own).
    async fn new(namespace: Option<&str>) -> io::Result<Factory> {
        let Some(namespace) = namespace else {
            return Ok(Factory { requests: None });
        };
        let (tx, rx) = std::sync::mpsc::channel::<(Type, tokio::sync::oneshot::Sender<_>)>();
        let (joined, ready) = tokio::sync::oneshot::channel();
        let thread = tokio::spawn(crate::netns::within(
            crate::netns::path(namespace),
            move || {
                let _ = joined.send(());
                while let Ok((kind, answer)) = rx.recv() {
                    let _ = answer.send(Socket::new(Domain::IPV4, kind, None));
                }
                Ok(())
            },
        ));
        if ready.await.is_err() {
            // The thread never joined the namespace: why, from it.
            let why = thread.await.map_err(io::Error::other)?.err();
            return Err(why.unwrap_or_else(|| io::Error::other("the namespace thread died")));
        }
        Ok(Factory { requests: Some(tx) })
    }

    /// A new non-blocking IPv4 socket of `kind` in the namespace.
    async fn socket(&self, kind: Type) -> io::Result<Socket> {
        let socket = match &self.requests {
            None => Socket::new(Domain::IPV4, kind, None)?,
            Some(requests) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                requests
                    .send((kind, tx))
                    .map_err(|_| io::Error::other("the namespace thread ended"))?;
                rx.await
                    .map_err(|_| io::Error::other("the namespace thread ended"))??
            }
        };
        socket.set_nonblocking(true)?;
        Ok(socket)
    }

    /// A socket of `kind` bound to `address` (port 0: any free one).
    async fn bound(&self, kind: Type, address: SocketAddr) -> io::Result<Socket> {
        let socket = self.socket(kind).await?;
        socket.set_reuse_address(true)?;
        socket.bind(&address.into())?;
        Ok(socket)
    }

    /// A TCP connection to `backend`, from the namespace.
    async fn connect(&self, backend: SocketAddr) -> io::Result<TcpStream> {
        let socket = self.socket(Type::STREAM).await?;
        let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
        let stream = socket.connect(backend).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// A UDP socket connected to `backend`, from the namespace.
    async fn udp(&self, backend: SocketAddr) -> io::Result<UdpSocket> {
        let socket = self
            .bound(Type::DGRAM, SocketAddr::from(([0, 0, 0, 0], 0)))
            .await?;
        let socket = UdpSocket::from_std(socket.into())?;
        socket.connect(backend).await?;
        Ok(socket)
    }
}

/// One address's socket at work.
struct Listener {
    /// The port it is bound to (the redirect's target when not held).
    port: u16,
    pool: Arc<Mutex<Pool>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The userspace mode's proxy for one node: its sockets, and the
/// redirects it last wrote (None: none yet, or a failed write).
pub struct Userspace {
    namespace: Option<String>,
    node: Vec<Ipv4Addr>,
    factory: Factory,
    listeners: BTreeMap<Address, Listener>,
    redirects: Option<Redirects>,
    /// Whether redirects can be written (root); said once when not.
    root: bool,
}

impl Userspace {
    /// The proxy of the node holding `node` addresses, in the named
    /// network namespace (None: this process's own).
    pub async fn new(namespace: Option<String>, node: Vec<Ipv4Addr>) -> Result<Userspace, String> {
        let factory = Factory::new(namespace.as_deref())
            .await
            .map_err(|e| format!("cannot enter the network namespace {namespace:?}: {e}"))?;
        let root = nix::unistd::geteuid().is_root();
        if !root {
            tracing::warn!("the userspace proxy is not root: it listens on node ports and loopback addresses, and leaves ClusterIPs and external IPs alone (they need a redirect rule)");
        }
        Ok(Userspace {
            namespace,
            node,
            factory,
            listeners: BTreeMap::new(),
            redirects: None,
            root,
        })
    }

    /// Brings the sockets and redirects to `rules` (every Service port:
    /// the userspace mode is not made for tens of thousands of them);
    /// `full` rewrites the redirects afresh. Answers how many sockets and
    /// redirect operations it took; an address that cannot be listened on
    /// fails the sync after the others are done.
    pub async fn sync(
        &mut self,
        rules: &BTreeMap<PortName, PortRules>,
        full: bool,
    ) -> Result<usize, String> {
        let reachable = |address: &Address| self.root || held(address.ip, &self.node);
        let all: Vec<(Address, &Virtual)> = rules
            .values()
            .flat_map(|port| port.virtuals.iter())
            .filter(|(address, _)| reachable(address))
            .map(|(address, v)| (*address, v))
            .collect();
        // Nowhere to go: no socket (a held address then refuses by
        // itself; another is refused by the table).
        let desired: BTreeMap<Address, &Virtual> = all
            .iter()
            .filter(|(_, v)| !v.backends.is_empty())
            .map(|(a, v)| (*a, *v))
            .collect();
        self.listeners
            .retain(|address, _| desired.contains_key(address));
        let mut changes = 0;
        let mut failures = Vec::new();
        for (address, virtual_server) in &desired {
            if let Some(listener) = self.listeners.get(address) {
                listener
                    .pool
                    .lock()
                    .expect("the pool")
                    .update(virtual_server);
                continue;
            }
            match self.listen(*address, virtual_server).await {
                Ok(listener) => {
                    self.listeners.insert(*address, listener);
                    changes += 1;
                }
                Err(e) => failures.push(format!(
                    "{}:{}/{}: {e}",
                    address.ip,
                    address.port,
                    address.protocol.name()
                )),
            }
        }
        if self.root {
            let redirects = Redirects {
                ports: self
                    .listeners
                    .iter()
                    .filter(|(address, _)| !held(address.ip, &self.node))
                    .map(|(address, listener)| (*address, listener.port))
                    .collect(),
                refused: all
                    .iter()
                    .filter(|(a, v)| v.backends.is_empty() && !held(a.ip, &self.node))
                    .map(|(a, _)| *a)
                    .collect(),
            };
            let old = self.redirects.take().filter(|_| !full);
            let ops = redirect_ops(old.as_ref(), &redirects);
            if !ops.is_empty() {
                let mut script = ops.join("\n");
                script.push('\n');
                crate::run::nft(self.namespace.as_deref(), &script).await?;
            }
            changes += ops.len();
            self.redirects = Some(redirects);
        }
        match failures.is_empty() {
            true => Ok(changes),
            false => Err(format!("cannot listen on {}", failures.join(", "))),
        }
    }

    /// Opens the socket of `address` and starts carrying its traffic.
    async fn listen(&self, address: Address, virtual_server: &Virtual) -> io::Result<Listener> {
        let at = match held(address.ip, &self.node) {
            true => SocketAddr::from((address.ip, address.port)),
            false => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let pool = Arc::new(Mutex::new(Pool::new(virtual_server)));
        let factory = self.factory.clone();
        let (port, task) = match address.protocol {
            Protocol::Tcp => {
                let socket = self.factory.bound(Type::STREAM, at).await?;
                socket.listen(1024)?;
                let listener = TcpListener::from_std(socket.into())?;
                let port = listener.local_addr()?.port();
                (
                    port,
                    tokio::spawn(serve_tcp(listener, pool.clone(), factory)),
                )
            }
            Protocol::Udp => {
                let socket = self.factory.bound(Type::DGRAM, at).await?;
                let socket = UdpSocket::from_std(socket.into())?;
                let port = socket.local_addr()?.port();
                (
                    port,
                    tokio::spawn(serve_udp(Arc::new(socket), pool.clone(), factory)),
                )
            }
            Protocol::Sctp => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the userspace proxy carries TCP and UDP",
                ))
            }
        };
        Ok(Listener {
            port,
            pool,
            task: task.abort_handle(),
        })
    }

    /// The addresses it listens for and where: `(address, local port,
    /// endpoints)`, for `skiff proxy rules`.
    pub fn listeners(&self) -> Vec<(Address, u16, Vec<SocketAddr>)> {
        self.listeners
            .iter()
            .map(|(address, l)| {
                let pool = l.pool.lock().expect("the pool");
                (*address, l.port, pool.backends.clone())
            })
            .collect()
    }
}

/// Accepts on `listener` and carries each connection to an endpoint.
async fn serve_tcp(listener: TcpListener, pool: Arc<Mutex<Pool>>, factory: Factory) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                tokio::spawn(carry_tcp(client, peer, pool.clone(), factory.clone()));
            }
            // Out of descriptors, say: a moment, then on.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Carries one connection: the first endpoint that answers, both ways
/// until either side closes; with none, the client is reset.
async fn carry_tcp(
    mut client: TcpStream,
    peer: SocketAddr,
    pool: Arc<Mutex<Pool>>,
    factory: Factory,
) {
    let candidates = pool
        .lock()
        .expect("the pool")
        .choose(peer.ip(), Instant::now());
    for backend in candidates {
        let Ok(Ok(mut upstream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, factory.connect(backend)).await
        else {
            continue;
        };
        pool.lock()
            .expect("the pool")
            .used(peer.ip(), backend, Instant::now());
        let _ = client.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }
    // Linger zero: closed with a reset, at once.
    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
}

/// One UDP client's way to its endpoint.
struct Session {
    upstream: Arc<UdpSocket>,
    last: Arc<Mutex<Instant>>,
}

/// Receives on `socket` and forwards each client's datagrams through its
/// session, answers back from the endpoint.
async fn serve_udp(socket: Arc<UdpSocket>, pool: Arc<Mutex<Pool>>, factory: Factory) {
    let sessions: Arc<Mutex<HashMap<SocketAddr, Session>>> = Arc::default();
    let mut buffer = vec![0u8; 65_535];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let existing = sessions
            .lock()
            .expect("the sessions")
            .get(&client)
            .map(|s| {
                *s.last.lock().expect("the clock") = Instant::now();
                s.upstream.clone()
            });
        let upstream = match existing {
            Some(upstream) => upstream,
            None => match open_session(&socket, &sessions, &pool, &factory, client).await {
                Some(upstream) => upstream,
                None => continue,
            },
        };
        let _ = upstream.send(&buffer[..n]).await;
    }
}

/// A new session for `client`, its answers carried back until it idles.
async fn open_session(
    socket: &Arc<UdpSocket>,
    sessions: &Arc<Mutex<HashMap<SocketAddr, Session>>>,
    pool: &Arc<Mutex<Pool>>,
    factory: &Factory,
    client: SocketAddr,
) -> Option<Arc<UdpSocket>> {
    let backend = *pool
        .lock()
        .expect("the pool")
        .choose(client.ip(), Instant::now())
        .first()?;
    let upstream = Arc::new(factory.udp(backend).await.ok()?);
    pool.lock()
        .expect("the pool")
        .used(client.ip(), backend, Instant::now());
    let last = Arc::new(Mutex::new(Instant::now()));
    sessions.lock().expect("the sessions").insert(
        client,
        Session {
            upstream: upstream.clone(),
            last: last.clone(),
        },
    );
    let (socket, sessions, answers) = (socket.clone(), sessions.clone(), upstream.clone());
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65_535];
        loop {
            let idle_at = *last.lock().expect("the clock") + UDP_IDLE;
            tokio::select! {
                received = answers.recv(&mut buffer) => match received {
                    Ok(n) => {
                        *last.lock().expect("the clock") = Instant::now();
                        let _ = socket.send_to(&buffer[..n], client).await;
                    }
                    Err(_) => break,
                },
                _ = tokio::time::sleep_until(idle_at) => {
                    if *last.lock().expect("the clock") + UDP_IDLE <= Instant::now() {
                        break;
                    }
                }
            }
        }
        sessions.lock().expect("the sessions").remove(&client);
    });
    Some(upstream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Backend, Traffic};

    fn virtual_server(backends: &[(u8, u16)], affinity: Option<u32>) -> Virtual {
        Virtual {
            service: PortName {
                service: ("default".into(), "web".into()),
                port: "http".into(),
                protocol: Protocol::Tcp,
            },
            traffic: Traffic::Internal,
            affinity,
            masquerade: false,
            backends: backends
                .iter()
                .map(|(last, port)| Backend {
                    ip: Ipv4Addr::new(10, 244, 1, *last),
                    port: *port,
                })
                .collect(),
        }
    }

    fn first(pool: &mut Pool, client: [u8; 4], now: Instant) -> SocketAddr {
        pool.choose(IpAddr::from(client), now)[0]
    }

    #[test]
    fn round_robin_takes_each_endpoint_in_turn_and_offers_the_next_on_failure() {
        let mut pool = Pool::new(&virtual_server(&[(5, 80), (6, 80), (7, 80)], None));
        let now = Instant::now();
        let firsts: Vec<String> = (0..4)
            .map(|_| first(&mut pool, [10, 244, 2, 9], now).to_string())
            .collect();
        assert_eq!(
            firsts,
            [
                "10.244.1.5:80",
                "10.244.1.6:80",
                "10.244.1.7:80",
                "10.244.1.5:80"
            ]
        );
        let tries = pool.choose(IpAddr::from([10, 244, 2, 9]), now);
        assert_eq!(tries.len(), 3, "each endpoint once: {tries:?}");
    }

    #[test]
    fn client_ip_affinity_keeps_a_client_on_its_endpoint_until_the_timeout() {
        let endpoints = [(5, 80), (6, 80), (7, 80)];
        let mut pool = Pool::new(&virtual_server(&endpoints, Some(10)));
        let now = Instant::now();
        let client = IpAddr::from([10, 244, 2, 9]);
        let chosen = first(&mut pool, [10, 244, 2, 9], now);
        pool.used(client, chosen, now);
        for _ in 0..5 {
            assert_eq!(first(&mut pool, [10, 244, 2, 9], now), chosen);
        }
        // Another client takes the next turn, the sticky one took none.
        let other = first(&mut pool, [10, 244, 3, 3], now);
        assert_eq!(other.to_string(), "10.244.1.6:80");
        // After the timeout, round robin again: the third endpoint's turn.
        let later = now + Duration::from_secs(11);
        assert_eq!(
            first(&mut pool, [10, 244, 2, 9], later).to_string(),
            "10.244.1.7:80"
        );
        // An endpoint that goes takes its clients' affinity with it.
        pool.used(client, chosen, later);
        pool.update(&virtual_server(&endpoints[1..], Some(10)));
        assert_ne!(first(&mut pool, [10, 244, 2, 9], later), chosen);
    }

    #[test]
    fn no_endpoints_means_nothing_to_try() {
        let mut pool = Pool::new(&virtual_server(&[], None));
        assert!(pool
            .choose(IpAddr::from([1, 2, 3, 4]), Instant::now())
            .is_empty());
    }

    #[test]
    fn node_and_loopback_addresses_are_listened_on_directly_others_redirected() {
        let node = [Ipv4Addr::new(172, 18, 0, 3)];
        assert!(held(Ipv4Addr::new(172, 18, 0, 3), &node));
        assert!(held(Ipv4Addr::new(127, 240, 0, 5), &node));
        assert!(!held(Ipv4Addr::new(10, 96, 0, 10), &node));
    }

    fn address(last: u8, port: u16, protocol: Protocol) -> Address {
        Address {
            ip: Ipv4Addr::new(10, 96, 0, last),
            port,
            protocol,
        }
    }

    fn redirects(ports: &[(Address, u16)], refused: &[Address]) -> Redirects {
        Redirects {
            ports: ports.iter().copied().collect(),
            refused: refused.iter().copied().collect(),
        }
    }

    #[test]
    fn redirects_start_with_the_table_then_change_only_their_elements() {
        let dns = address(10, 53, Protocol::Udp);
        let web = address(20, 80, Protocol::Tcp);
        let nobody = address(30, 80, Protocol::Tcp);
        let first = redirects(&[(dns, 40001), (web, 40002)], &[nobody]);
        let ops = redirect_ops(None, &first);
        assert_eq!(
            ops[..3],
            [
                "add table ip skiff-proxy",
                "delete table ip skiff-proxy",
                "add table ip skiff-proxy"
            ]
        );
        for op in [
            "add rule ip skiff-proxy nat-output meta l4proto { tcp, udp, sctp } redirect to : ip daddr . meta l4proto . th dport map @userspace-ports",
            "add rule ip skiff-proxy filter-prerouting ct state new ip daddr . meta l4proto . th dport @no-endpoint-services reject",
            "add element ip skiff-proxy userspace-ports { 10.96.0.10 . udp . 53 : 40001 }",
            "add element ip skiff-proxy no-endpoint-services { 10.96.0.30 . tcp . 80 }",
        ] {
            assert!(ops.contains(&op.to_string()), "{op} in {ops:#?}");
        }
        // The DNS port's socket moved, web lost its endpoints.
        let second = redirects(&[(dns, 40003)], &[nobody, web]);
        assert_eq!(
            redirect_ops(Some(&first), &second),
            [
                "delete element ip skiff-proxy userspace-ports { 10.96.0.10 . udp . 53 }",
                "delete element ip skiff-proxy userspace-ports { 10.96.0.20 . tcp . 80 }",
                "add element ip skiff-proxy userspace-ports { 10.96.0.10 . udp . 53 : 40003 }",
                "add element ip skiff-proxy no-endpoint-services { 10.96.0.20 . tcp . 80 }",
            ]
        );
        assert!(redirect_ops(Some(&second), &second).is_empty());
    }

    #[test]
    fn nft_accepts_the_redirects_and_their_changes() {
        let dns = address(10, 53, Protocol::Udp);
        let web = address(20, 80, Protocol::Tcp);
        let first = redirects(&[(dns, 40001), (web, 40002)], &[]);
        let second = redirects(&[(web, 40003)], &[dns]);
        let mut ops = redirect_ops(None, &first);
        ops.extend(redirect_ops(Some(&first), &second));
        crate::nftables::checked_by_nft(&(ops.join("\n") + "\n"));
    }
}
