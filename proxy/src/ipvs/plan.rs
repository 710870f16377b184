//! What the kernel's IPVS must do to hold the desired rules, computed
//! without I/O from them and from the kernel's dump, as kube-proxy's IPVS
//! proxier (`pkg/proxy/ipvs/proxier.go`, `graceful_termination.go`) does:
//!
//! - each address of each Service port is a virtual server (TCP, UDP or
//!   SCTP) with the configured scheduler, persistent with its timeout
//!   when the port has ClientIP affinity, and each endpoint a
//!   masquerading real server of weight 1;
//! - a virtual server nobody wants any more is deleted;
//! - a real server nobody wants any more is deleted at once when its
//!   protocol is UDP or SCTP (kube-proxy's `IsRsGracefulTerminationNeeded`)
//!   or when it has no connections; otherwise it is set to weight 0 (no
//!   new connections) and deleted by a later sync, once its ActiveConn and
//!   InActConn are both 0.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use super::codec::{self, forward, Dest, Request, Service, Stats};
use crate::model::{Address, Backend, PortName, PortRules, Protocol};

/// The schedulers accepted, as ipvsadm names them.
pub const SCHEDULERS: [&str; 9] = ["rr", "wrr", "lc", "wlc", "sh", "dh", "sed", "nq", "mh"];

/// The scheduler for `name` (empty: `rr`, kube-proxy's default), or why
/// it is refused.
pub fn scheduler(name: &str) -> Result<&str, String> {
    match name {
        "" => Ok("rr"),
        name if SCHEDULERS.contains(&name) => Ok(name),
        other => Err(format!(
            "unknown IPVS scheduler {other:?} (one of {})",
            SCHEDULERS.join(", ")
        )),
    }
}

fn protocol_number(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Tcp => codec::IPPROTO_TCP,
        Protocol::Udp => codec::IPPROTO_UDP,
        Protocol::Sctp => codec::IPPROTO_SCTP,
    }
}

/// The address of one of the kernel's virtual servers, if it is one the
/// proxy could have made (IPv4, no firewall mark, TCP, UDP or SCTP).
pub fn address_of(service: &Service) -> Option<Address> {
    let protocol = match service.protocol {
        codec::IPPROTO_TCP => Protocol::Tcp,
        codec::IPPROTO_UDP => Protocol::Udp,
        codec::IPPROTO_SCTP => Protocol::Sctp,
        _ => return None,
    };
    match (service.family, service.fwmark, service.address) {
        (codec::AF_INET, 0, IpAddr::V4(ip)) => Some(Address {
            ip,
            port: service.port,
            protocol,
        }),
        _ => None,
    }
}

/// The virtual server for `address`.
pub fn virtual_server(address: &Address, scheduler: &str, affinity: Option<u32>) -> Service {
    Service {
        family: codec::AF_INET,
        protocol: protocol_number(address.protocol),
        address: IpAddr::V4(address.ip),
        port: address.port,
        fwmark: 0,
        scheduler: scheduler.to_owned(),
        flags: affinity.map_or(0, |_| codec::F_PERSISTENT),
        timeout: affinity.unwrap_or(0),
        netmask: u32::MAX,
        stats: Stats::default(),
    }
}

/// The real server for `backend`: masquerading, weight 1.
pub fn real_server(backend: &Backend) -> Dest {
    Dest {
        family: codec::AF_INET,
        address: IpAddr::V4(backend.ip),
        port: backend.port,
        forward: forward::MASQ,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
        active: 0,
        inactive: 0,
        persistent: 0,
        stats: Stats::default(),
    }
}

/// A virtual server as the rules want it, with its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The virtual server.
    pub service: Service,
    /// Where it sends traffic.
    pub backends: BTreeSet<Backend>,
}

/// Every virtual server the rules ask for (one with no backends too: the
/// table's reject answers for it), by address.
pub fn desired(
    rules: &BTreeMap<PortName, PortRules>,
    scheduler: &str,
) -> BTreeMap<Address, Wanted> {
    let mut wanted = BTreeMap::new();
    for port in rules.values() {
        for (address, virtual_) in &port.virtuals {
            wanted.entry(*address).or_insert_with(|| Wanted {
                service: virtual_server(address, scheduler, virtual_.affinity),
                backends: virtual_.backends.iter().copied().collect(),
            });
        }
    }
    wanted
}

/// Every IP a virtual server answers on.
pub fn virtual_ips(rules: &BTreeMap<PortName, PortRules>) -> BTreeSet<Ipv4Addr> {
    rules
        .values()
        .flat_map(|port| port.virtuals.keys().map(|a| a.ip))
        .collect()
}

/// One of the kernel's virtual servers and its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The virtual server.
    pub service: Service,
    /// Its real servers (may be left empty for one nobody wants).
    pub dests: Vec<Dest>,
}

/// One change to the kernel's IPVS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// A new virtual server.
    AddService(Service),
    /// A virtual server's scheduler or persistence changed.
    UpdateService(Service),
    /// A virtual server nobody wants.
    DeleteService(Service),
    /// A new real server.
    AddDest(Service, Dest),
    /// A real server's weight or forwarding changed (weight 0: draining).
    UpdateDest(Service, Dest),
    /// A real server gone.
    DeleteDest(Service, Dest),
}

impl Operation {
    /// The request that carries it out.
    pub fn request(&self) -> Request<'_> {
        match self {
            Operation::AddService(s) => Request::NewService(s),
            Operation::UpdateService(s) => Request::SetService(s),
            Operation::DeleteService(s) => Request::DelService(s),
            Operation::AddDest(s, d) => Request::NewDest(s, d),
            Operation::UpdateDest(s, d) => Request::SetDest(s, d),
            Operation::DeleteDest(s, d) => Request::DelDest(s, d),
        }
    }
}

/// The operations of one sync, and the virtual servers whose real
/// servers drain (a later sync deletes them once idle).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In the order to apply them.
    pub operations: Vec<Operation>,
    /// Virtual servers with real servers at weight 0 waiting for their
    /// connections to end.
    pub draining: BTreeSet<Address>,
}

/// Whether the kernel's `service` is what `wanted` asks: the same
/// scheduler, persistence and timeout (the kernel adds flags of its own,
/// such as HASHED).
fn same_service(current: &Service, wanted: &Service) -> bool {
    let kept = codec::F_PERSISTENT | codec::F_ONEPACKET;
    current.scheduler == wanted.scheduler
        && current.flags & kept == wanted.flags & kept
        && current.timeout == wanted.timeout
        && current.netmask == wanted.netmask
}

fn backend_of(dest: &Dest) -> Option<Backend> {
    match dest.address {
        IpAddr::V4(ip) => Some(Backend {
            ip,
            port: dest.port,
        }),
        IpAddr::V6(_) => None,
    }
}

/// The connections of `/proc/net/ip_vs_conn` (its text) that may still
/// carry data, by virtual server and real server: those in any state but
/// TIME_WAIT and CLOSE. IPVS counts those two in InActConn for minutes
/// (TIME_WAIT: 2), so a drained real server whose connections all ended
/// would wait that long; kube-proxy waits it out, we do not.
pub fn live_connections(table: &str) -> BTreeSet<(Address, Backend)> {
    let hex_ip = |text: &str| u32::from_str_radix(text, 16).ok().map(Ipv4Addr::from);
    let hex_port = |text: &str| u16::from_str_radix(text, 16).ok();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let protocol = match *f.first()? {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => return None,
            };
            if matches!(*f.get(7)?, "TIME_WAIT" | "CLOSE") {
                return None;
            }
            let virtual_ = Address {
                ip: hex_ip(f.get(3)?)?,
                port: hex_port(f.get(4)?)?,
                protocol,
            };
            let real = Backend {
                ip: hex_ip(f.get(5)?)?,
                port: hex_port(f.get(6)?)?,
            };
            Some((virtual_, real))
        })
        .collect()
}

/// The operations that bring `current` (the kernel's virtual servers, by
/// address) to `desired`.
pub fn plan(desired: &BTreeMap<Address, Wanted>, current: &BTreeMap<Address, Current>) -> Plan {
    let mut plan = Plan::default();
    for (address, wanted) in desired {
        let service = &wanted.service;
        let Some(now) = current.get(address) else {
            plan.operations.push(Operation::AddService(service.clone()));
            plan.operations.extend(
                wanted
                    .backends
                    .iter()
                    .map(|b| Operation::AddDest(service.clone(), real_server(b))),
            );
            continue;
        };
        if !same_service(&now.service, service) {
            plan.operations
                .push(Operation::UpdateService(service.clone()));
        }
        let existing: BTreeMap<Backend, &Dest> = now
            .dests
            .iter()
            .filter_map(|d| Some((backend_of(d)?, d)))
            .collect();
        for backend in &wanted.backends {
            let real = real_server(backend);
            match existing.get(backend) {
                None => plan
                    .operations
                    .push(Operation::AddDest(service.clone(), real)),
                Some(d) if d.weight != real.weight || d.forward != real.forward => plan
                    .operations
                    .push(Operation::UpdateDest(service.clone(), real)),
                Some(_) => {}
            }
        }
        let graceful = address.protocol == Protocol::Tcp;
        for (backend, dest) in &existing {
            if wanted.backends.contains(backend) {
                continue;
            }
            let idle = dest.active == 0 && dest.inactive == 0;
            if !graceful || idle {
                plan.operations
                    .push(Operation::DeleteDest(service.clone(), (*dest).clone()));
                continue;
            }
            plan.draining.insert(*address);
            if dest.weight != 0 {
                let drained = Dest {
                    weight: 0,
                    ..(*dest).clone()
                };
                plan.operations
                    .push(Operation::UpdateDest(service.clone(), drained));
            }
        }
    }
    for (address, now) in current {
        if !desired.contains_key(address) {
            plan.operations
                .push(Operation::DeleteService(now.service.clone()));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Traffic, Virtual};

    fn address(last: u8, protocol: Protocol) -> Address {
        Address {
            ip: Ipv4Addr::new(10, 96, 0, last),
            port: 80,
            protocol,
        }
    }

    fn backend(last: u8) -> Backend {
        Backend {
            ip: Ipv4Addr::new(10, 244, 1, last),
            port: 8080,
        }
    }

    fn rules(affinity: Option<u32>, backends: &[u8]) -> BTreeMap<PortName, PortRules> {
        let name = PortName {
            service: ("default".into(), "web".into()),
            port: String::new(),
            protocol: Protocol::Tcp,
        };
        let virtual_ = Virtual {
            service: name.clone(),
            traffic: Traffic::Internal,
            affinity,
            masquerade: false,
            backends: backends.iter().map(|b| backend(*b)).collect(),
        };
        let port = PortRules {
            virtuals: [(address(10, Protocol::Tcp), virtual_)].into(),
            health_check: None,
        };
        [(name, port)].into()
    }

    fn wanted(protocol: Protocol, backends: &[u8]) -> BTreeMap<Address, Wanted> {
        let address = address(10, protocol);
        [(
            address,
            Wanted {
                service: virtual_server(&address, "rr", None),
                backends: backends.iter().map(|b| backend(*b)).collect(),
            },
        )]
        .into()
    }

    /// The kernel holding `want`'s virtual server with these real servers
    /// (last octet, weight, active, inactive), flagged HASHED as the
    /// kernel flags it.
    fn kernel(
        want: &BTreeMap<Address, Wanted>,
        dests: &[(u8, u32, u32, u32)],
    ) -> BTreeMap<Address, Current> {
        want.iter()
            .map(|(address, w)| {
                let service = Service {
                    flags: w.service.flags | 0x2,
                    ..w.service.clone()
                };
                let dests = dests
                    .iter()
                    .map(|(last, weight, active, inactive)| Dest {
                        weight: *weight,
                        active: *active,
                        inactive: *inactive,
                        ..real_server(&backend(*last))
                    })
                    .collect();
                (*address, Current { service, dests })
            })
            .collect()
    }

    fn kinds(plan: &Plan) -> Vec<String> {
        plan.operations
            .iter()
            .map(|op| match op {
                Operation::AddService(s) => format!("add {}:{}", s.address, s.port),
                Operation::UpdateService(s) => format!("update {} {}", s.scheduler, s.timeout),
                Operation::DeleteService(s) => format!("delete {}:{}", s.address, s.port),
                Operation::AddDest(_, d) => format!("add-dest {} w{}", d.address, d.weight),
                Operation::UpdateDest(_, d) => format!("set-dest {} w{}", d.address, d.weight),
                Operation::DeleteDest(_, d) => format!("del-dest {}", d.address),
            })
            .collect()
    }

    #[test]
    fn connections_that_ended_are_not_live() {
        let table =
            "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP 0AF40302 C35A 0A60000A 0050 0AF40105 1F90 ESTABLISHED 899
TCP 0AF40302 C35B 0A60000A 0050 0AF40106 1F90 TIME_WAIT   119
TCP 0AF40302 C35C 0A60000A 0050 0AF40107 1F90 CLOSE_WAIT  59
";
        let live = live_connections(table);
        let key = |last| (address(10, Protocol::Tcp), backend(last));
        assert_eq!(live, [key(5), key(7)].into());
    }

    #[test]
    fn schedulers_default_to_rr_and_unknown_ones_are_refused() {
        assert_eq!(scheduler(""), Ok("rr"));
        for name in SCHEDULERS {
            assert_eq!(scheduler(name), Ok(name));
        }
        assert!(scheduler("fastest").unwrap_err().contains("wrr"));
    }

    #[test]
    fn each_address_is_a_virtual_server_persistent_with_affinity() {
        let want = desired(&rules(Some(10800), &[3, 4]), "wlc");
        let w = &want[&address(10, Protocol::Tcp)];
        assert_eq!(w.service.scheduler, "wlc");
        assert_eq!(w.service.flags, codec::F_PERSISTENT);
        assert_eq!(w.service.timeout, 10800);
        assert_eq!(w.service.protocol, codec::IPPROTO_TCP);
        assert_eq!(w.backends.len(), 2);
        let plain = desired(&rules(None, &[]), "rr");
        let w = &plain[&address(10, Protocol::Tcp)];
        assert_eq!((w.service.flags, w.service.timeout), (0, 0));
        assert!(w.backends.is_empty(), "kept, with no real server");
        let real = real_server(&backend(3));
        assert_eq!((real.forward, real.weight), (forward::MASQ, 1));
        assert_eq!(
            virtual_ips(&rules(None, &[])),
            [Ipv4Addr::new(10, 96, 0, 10)].into()
        );
        let sctp = virtual_server(&address(1, Protocol::Sctp), "rr", None);
        assert_eq!(sctp.protocol, codec::IPPROTO_SCTP);
        assert_eq!(address_of(&sctp), Some(address(1, Protocol::Sctp)));
        let marked = Service { fwmark: 7, ..sctp };
        assert_eq!(address_of(&marked), None, "not one of ours");
    }

    #[test]
    fn a_new_virtual_server_is_added_with_its_real_servers() {
        let want = wanted(Protocol::Tcp, &[3, 4]);
        let plan = plan(&want, &BTreeMap::new());
        assert_eq!(
            kinds(&plan),
            [
                "add 10.96.0.10:80",
                "add-dest 10.244.1.3 w1",
                "add-dest 10.244.1.4 w1"
            ]
        );
        assert!(plan.draining.is_empty());
    }

    #[test]
    fn a_synced_kernel_needs_nothing_whatever_its_own_flags() {
        let want = wanted(Protocol::Tcp, &[3, 4]);
        let now = kernel(&want, &[(3, 1, 5, 1), (4, 1, 0, 0)]);
        assert_eq!(plan(&want, &now), Plan::default());
    }

    #[test]
    fn a_changed_scheduler_or_timeout_updates_the_virtual_server() {
        let want = wanted(Protocol::Tcp, &[]);
        let mut now = kernel(&want, &[]);
        now.values_mut()
            .for_each(|c| c.service.scheduler = "wlc".into());
        assert_eq!(kinds(&plan(&want, &now)), ["update rr 0"]);
        let persistent = desired(&rules(Some(60), &[]), "rr");
        assert_eq!(
            kinds(&plan(&persistent, &kernel(&want, &[]))),
            ["update rr 60"]
        );
    }

    #[test]
    fn a_drained_real_server_wanted_again_gets_its_weight_back() {
        let want = wanted(Protocol::Tcp, &[3]);
        let now = kernel(&want, &[(3, 0, 2, 0)]);
        assert_eq!(kinds(&plan(&want, &now)), ["set-dest 10.244.1.3 w1"]);
    }

    #[test]
    fn a_gone_tcp_real_server_with_connections_drains_then_goes() {
        let want = wanted(Protocol::Tcp, &[3]);
        let busy = kernel(&want, &[(3, 1, 0, 0), (4, 1, 2, 1)]);
        let first = plan(&want, &busy);
        assert_eq!(kinds(&first), ["set-dest 10.244.1.4 w0"]);
        assert_eq!(first.draining, [address(10, Protocol::Tcp)].into());
        let still_busy = kernel(&want, &[(3, 1, 0, 0), (4, 0, 0, 1)]);
        let waiting = plan(&want, &still_busy);
        assert!(waiting.operations.is_empty(), "InActConn counts too");
        assert_eq!(waiting.draining.len(), 1);
        let idle = kernel(&want, &[(3, 1, 0, 0), (4, 0, 0, 0)]);
        let last = plan(&want, &idle);
        assert_eq!(kinds(&last), ["del-dest 10.244.1.4"]);
        assert!(last.draining.is_empty());
        let never_used = kernel(&want, &[(3, 1, 0, 0), (5, 1, 0, 0)]);
        assert_eq!(kinds(&plan(&want, &never_used)), ["del-dest 10.244.1.5"]);
    }

    #[test]
    fn a_gone_udp_or_sctp_real_server_goes_at_once() {
        for protocol in [Protocol::Udp, Protocol::Sctp] {
            let want = wanted(protocol, &[3]);
            let now = kernel(&want, &[(3, 1, 0, 0), (4, 1, 9, 9)]);
            let plan = plan(&want, &now);
            assert_eq!(kinds(&plan), ["del-dest 10.244.1.4"], "{protocol:?}");
            assert!(plan.draining.is_empty());
        }
    }

    #[test]
    fn a_virtual_server_nobody_wants_is_deleted_after_the_rest() {
        let want = wanted(Protocol::Tcp, &[3]);
        let mut now = kernel(&wanted(Protocol::Udp, &[3]), &[(3, 1, 0, 0)]);
        let plan = plan(&want, &now);
        assert_eq!(
            kinds(&plan),
            [
                "add 10.96.0.10:80",
                "add-dest 10.244.1.3 w1",
                "delete 10.96.0.10:80"
            ]
        );
        now.clear();
        assert_eq!(super::plan(&BTreeMap::new(), &now), Plan::default());
    }

    #[test]
    fn operations_map_onto_their_requests() {
        let service = virtual_server(&address(10, Protocol::Tcp), "rr", None);
        let real = real_server(&backend(3));
        let cases = [
            (
                Operation::AddService(service.clone()),
                codec::command::NEW_SERVICE,
            ),
            (
                Operation::UpdateService(service.clone()),
                codec::command::SET_SERVICE,
            ),
            (
                Operation::DeleteService(service.clone()),
                codec::command::DEL_SERVICE,
            ),
            (
                Operation::AddDest(service.clone(), real.clone()),
                codec::command::NEW_DEST,
            ),
            (
                Operation::UpdateDest(service.clone(), real.clone()),
                codec::command::SET_DEST,
            ),
            (
                Operation::DeleteDest(service, real),
                codec::command::DEL_DEST,
            ),
        ];
        for (operation, command) in cases {
            assert_eq!(operation.request().command(), command);
        }
    }
}
