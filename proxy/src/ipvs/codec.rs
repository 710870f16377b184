//! IPVS over generic netlink, encoded and decoded without I/O, as the
//! kernel's `include/uapi/linux/ip_vs.h` defines it and as ipvsadm 1.31's
//! libipvs speaks it (the same attributes, in the same order, so that a
//! request of ours is byte for byte the one `ipvsadm` sends for the same
//! command, but for its sequence number and port id).
//!
//! The framing (the netlink and generic netlink headers, ACKs, errors,
//! `NLMSG_DONE`) is `netlink-packet-core`'s and `netlink-packet-generic`'s;
//! the IPVS family's attributes are ours:
//!
//! - a request nests a service (`IPVS_CMD_ATTR_SERVICE`) and, for the
//!   destination commands, a destination (`IPVS_CMD_ATTR_DEST`), marked
//!   `NLA_F_NESTED` as libnl marks them;
//! - a service is AF, then FWMARK or PROTOCOL, ADDR (16 bytes, IPv4 in the
//!   first 4), PORT (network order), then SCHED_NAME (NUL-terminated),
//!   FLAGS as the 8-byte `{flags, mask}` (a 4-byte FLAGS is refused by the
//!   policy, and persistence with it), TIMEOUT and NETMASK;
//! - a destination is ADDR_FAMILY, ADDR, PORT, FWD_METHOD, WEIGHT, the
//!   tunnel's TYPE, PORT and FLAGS, U_THRESH and L_THRESH;
//! - the kernel's dumps add STATS (and STATS64) to both, and ACTIVE_CONNS,
//!   INACT_CONNS and PERSIST_CONNS to a destination.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, ParseableParametrized,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

use crate::nla::attributes;
/// The attributes, and the framing helpers the nftables codec shares.
pub use crate::nla::{messages, serialize, Attr};

/// The generic netlink family's name.
pub const FAMILY_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
const GENL_VERSION: u8 = 1;

/// The IPVS commands (`IPVS_CMD_*`).
pub mod command {
    /// Adds a service.
    pub const NEW_SERVICE: u8 = 1;
    /// Changes a service.
    pub const SET_SERVICE: u8 = 2;
    /// Removes a service.
    pub const DEL_SERVICE: u8 = 3;
    /// Reads services (a dump).
    pub const GET_SERVICE: u8 = 4;
    /// Adds a destination.
    pub const NEW_DEST: u8 = 5;
    /// Changes a destination.
    pub const SET_DEST: u8 = 6;
    /// Removes a destination.
    pub const DEL_DEST: u8 = 7;
    /// Reads a service's destinations (a dump).
    pub const GET_DEST: u8 = 8;
    /// The kernel's answer to [`GET_INFO`].
    pub const SET_INFO: u8 = 14;
    /// Reads the version and the connection table's size.
    pub const GET_INFO: u8 = 15;
    /// Removes every service.
    pub const FLUSH: u8 = 17;
}

const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;

const SVC_ATTR_AF: u16 = 1;
const SVC_ATTR_PROTOCOL: u16 = 2;
const SVC_ATTR_ADDR: u16 = 3;
const SVC_ATTR_PORT: u16 = 4;
const SVC_ATTR_FWMARK: u16 = 5;
const SVC_ATTR_SCHED_NAME: u16 = 6;
const SVC_ATTR_FLAGS: u16 = 7;
const SVC_ATTR_TIMEOUT: u16 = 8;
const SVC_ATTR_NETMASK: u16 = 9;
const SVC_ATTR_STATS: u16 = 10;
const SVC_ATTR_STATS64: u16 = 12;

const DEST_ATTR_ADDR: u16 = 1;
const DEST_ATTR_PORT: u16 = 2;
const DEST_ATTR_FWD_METHOD: u16 = 3;
const DEST_ATTR_WEIGHT: u16 = 4;
const DEST_ATTR_U_THRESH: u16 = 5;
const DEST_ATTR_L_THRESH: u16 = 6;
const DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const DEST_ATTR_INACT_CONNS: u16 = 8;
const DEST_ATTR_PERSIST_CONNS: u16 = 9;
const DEST_ATTR_STATS: u16 = 10;
const DEST_ATTR_ADDR_FAMILY: u16 = 11;
const DEST_ATTR_STATS64: u16 = 12;
const DEST_ATTR_TUN_TYPE: u16 = 13;
const DEST_ATTR_TUN_PORT: u16 = 14;
const DEST_ATTR_TUN_FLAGS: u16 = 15;

const STATS_ATTR_CONNS: u16 = 1;
const STATS_ATTR_INPKTS: u16 = 2;
const STATS_ATTR_OUTPKTS: u16 = 3;
const STATS_ATTR_INBYTES: u16 = 4;
const STATS_ATTR_OUTBYTES: u16 = 5;
const STATS_ATTR_CPS: u16 = 6;
const STATS_ATTR_INPPS: u16 = 7;
const STATS_ATTR_OUTPPS: u16 = 8;
const STATS_ATTR_INBPS: u16 = 9;
const STATS_ATTR_OUTBPS: u16 = 10;

const INFO_ATTR_VERSION: u16 = 1;
const INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u16 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u16 = 17;
/// `IPPROTO_SCTP`.
pub const IPPROTO_SCTP: u16 = 132;

/// `IP_VS_SVC_F_PERSISTENT`: a client sticks to its real server.
pub const F_PERSISTENT: u32 = 0x1;
/// `IP_VS_SVC_F_ONEPACKET`: one-packet scheduling (UDP).
pub const F_ONEPACKET: u32 = 0x4;

/// How a destination is reached (`IP_VS_CONN_F_*`, FWD_METHOD).
pub mod forward {
    /// Masquerading (NAT), kube-proxy's.
    pub const MASQ: u32 = 0;
    /// The local node.
    pub const LOCAL: u32 = 1;
    /// IP-in-IP tunnelling.
    pub const TUNNEL: u32 = 2;
    /// Direct routing (ipvsadm's default).
    pub const ROUTE: u32 = 3;
}

/// A virtual server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its address family ([`AF_INET`] or [`AF_INET6`]).
    pub family: u16,
    /// Its protocol (`IPPROTO_*`; unused with a firewall mark).
    pub protocol: u16,
    /// Its address.
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its firewall mark (0: none; the address, port and protocol name it).
    pub fwmark: u32,
    /// Its scheduler's name.
    pub scheduler: String,
    /// `IP_VS_SVC_F_*`.
    pub flags: u32,
    /// The persistence timeout, in seconds.
    pub timeout: u32,
    /// The persistence granularity (0xffffffff: one client address).
    pub netmask: u32,
    /// Its counters (dumps only).
    pub stats: Stats,
}

/// A real server of a virtual one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// Its address family.
    pub family: u16,
    /// Its address.
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// How it is reached ([`forward`]).
    pub forward: u32,
    /// Its weight (0: no new connections).
    pub weight: u32,
    /// The upper connection threshold (0: none).
    pub upper_threshold: u32,
    /// The lower connection threshold.
    pub lower_threshold: u32,
    /// Its established connections (dumps only).
    pub active: u32,
    /// Its other connections (dumps only).
    pub inactive: u32,
    /// Its persistence templates (dumps only).
    pub persistent: u32,
    /// Its counters (dumps only).
    pub stats: Stats,
}

/// The counters of a service or destination (STATS64 where the kernel
/// sends it, else STATS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections scheduled.
    pub connections: u64,
    /// Packets in.
    pub packets_in: u64,
    /// Packets out.
    pub packets_out: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// Bytes out.
    pub bytes_out: u64,
    /// Connections per second.
    pub cps: u64,
    /// Packets in per second.
    pub pps_in: u64,
    /// Packets out per second.
    pub pps_out: u64,
    /// Bytes in per second.
    pub bps_in: u64,
    /// Bytes out per second.
    pub bps_out: u64,
}

/// What GET_INFO answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// The IPVS version, `(major << 16) | (minor << 8) | patch`.
    pub version: u32,
    /// The connection table's size.
    pub connection_table_size: u32,
}

impl Info {
    /// The version as ipvsadm prints it (`1.2.1`).
    pub fn version_text(&self) -> String {
        let v = self.version;
        format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
    }
}

/// A request to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `ipvsadm -A`.
    NewService(&'a Service),
    /// `ipvsadm -E`.
    SetService(&'a Service),
    /// `ipvsadm -D`.
    DelService(&'a Service),
    /// `ipvsadm -a`.
    NewDest(&'a Service, &'a Dest),
    /// `ipvsadm -e`.
    SetDest(&'a Service, &'a Dest),
    /// `ipvsadm -d`.
    DelDest(&'a Service, &'a Dest),
    /// Every service (a dump).
    GetServices,
    /// The destinations of a service (a dump).
    GetDests(&'a Service),
    /// The version and table size.
    GetInfo,
    /// `ipvsadm -C`.
    Flush,
}

impl Request<'_> {
    /// Its command.
    pub fn command(&self) -> u8 {
        match self {
            Request::NewService(_) => command::NEW_SERVICE,
            Request::SetService(_) => command::SET_SERVICE,
            Request::DelService(_) => command::DEL_SERVICE,
            Request::NewDest(..) => command::NEW_DEST,
            Request::SetDest(..) => command::SET_DEST,
            Request::DelDest(..) => command::DEL_DEST,
            Request::GetServices => command::GET_SERVICE,
            Request::GetDests(_) => command::GET_DEST,
            Request::GetInfo => command::GET_INFO,
            Request::Flush => command::FLUSH,
        }
    }

    /// Whether the kernel answers with a dump (ended by `NLMSG_DONE`).
    pub fn is_dump(&self) -> bool {
        matches!(self, Request::GetServices | Request::GetDests(_))
    }

    fn attributes(&self) -> Vec<Attr> {
        match self {
            Request::NewService(s) | Request::SetService(s) | Request::DelService(s) => {
                vec![service_attr(s)]
            }
            // libipvs's ipvs_get_dests names the service only.
            Request::GetDests(s) => vec![Attr::Nested(CMD_ATTR_SERVICE, service_identity(s))],
            Request::NewDest(s, d) | Request::SetDest(s, d) | Request::DelDest(s, d) => {
                vec![service_attr(s), dest_attr(d)]
            }
            Request::GetServices | Request::GetInfo | Request::Flush => Vec::new(),
        }
    }
}

/// What names a service: AF, then FWMARK or PROTOCOL, ADDR and PORT.
fn service_identity(service: &Service) -> Vec<Attr> {
    let mut attrs = vec![Attr::u16(SVC_ATTR_AF, service.family)];
    if service.fwmark != 0 {
        attrs.push(Attr::u32(SVC_ATTR_FWMARK, service.fwmark));
    } else {
        attrs.push(Attr::u16(SVC_ATTR_PROTOCOL, service.protocol));
        attrs.push(Attr::address(SVC_ATTR_ADDR, service.address));
        attrs.push(Attr::be16(SVC_ATTR_PORT, service.port));
    }
    attrs
}

fn service_attr(service: &Service) -> Attr {
    let mut attrs = service_identity(service);
    let mut flags = service.flags.to_ne_bytes().to_vec();
    flags.extend_from_slice(&u32::MAX.to_ne_bytes());
    attrs.extend([
        Attr::string(SVC_ATTR_SCHED_NAME, &service.scheduler),
        Attr::Value(SVC_ATTR_FLAGS, flags),
        Attr::u32(SVC_ATTR_TIMEOUT, service.timeout),
        Attr::u32(SVC_ATTR_NETMASK, service.netmask),
    ]);
    Attr::Nested(CMD_ATTR_SERVICE, attrs)
}

fn dest_attr(dest: &Dest) -> Attr {
    Attr::Nested(
        CMD_ATTR_DEST,
        vec![
            Attr::u16(DEST_ATTR_ADDR_FAMILY, dest.family),
            Attr::address(DEST_ATTR_ADDR, dest.address),
            Attr::be16(DEST_ATTR_PORT, dest.port),
            Attr::u32(DEST_ATTR_FWD_METHOD, dest.forward),
            Attr::u32(DEST_ATTR_WEIGHT, dest.weight),
            // No tunnel: libipvs sends its zeroes all the same.
            Attr::Value(DEST_ATTR_TUN_TYPE, vec![0]),
            Attr::be16(DEST_ATTR_TUN_PORT, 0),
            Attr::u16(DEST_ATTR_TUN_FLAGS, 0),
            Attr::u32(DEST_ATTR_U_THRESH, dest.upper_threshold),
            Attr::u32(DEST_ATTR_L_THRESH, dest.lower_threshold),
        ],
    )
}

/// The IPVS family's part of a generic netlink message: its command and
/// top-level attributes (parsed ones are [`Attr::Value`]s: the kernel
/// does not mark what it nests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    /// The command.
    pub command: u8,
    /// The attributes.
    pub attrs: Vec<Attr>,
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.command
    }

    fn version(&self) -> u8 {
        GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = attributes(buf)?
            .into_iter()
            .map(|(kind, value)| Attr::Value(kind, value.to_vec()))
            .collect();
        Ok(IpvsMessage {
            command: header.cmd,
            attrs,
        })
    }
}

/// The whole message of `request` to the family `family`, numbered
/// `sequence`, with the flags libnl gives it (REQUEST and ACK, and DUMP
/// for a dump); the port id is left 0 for the kernel to fill in.
pub fn message(
    request: &Request,
    family: u16,
    sequence: u32,
) -> NetlinkMessage<GenlMessage<IpvsMessage>> {
    let payload = IpvsMessage {
        command: request.command(),
        attrs: request.attributes(),
    };
    let mut genl = GenlMessage::from_payload(payload);
    genl.set_resolved_family_id(family);
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | if request.is_dump() { NLM_F_DUMP } else { 0 };
    header.sequence_number = sequence;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
    message.finalize();
    message
}

/// The bytes of [`message`].
pub fn encode(request: &Request, family: u16, sequence: u32) -> Vec<u8> {
    serialize(&message(request, family, sequence))
}

/// What an IPVS message from the kernel carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A service of a GET_SERVICE dump.
    Service(Service),
    /// A destination of a GET_DEST dump.
    Dest(Dest),
    /// GET_INFO's answer.
    Info(Info),
}

impl Reply {
    /// Reads the kernel's `message`.
    pub fn parse(message: &IpvsMessage) -> Result<Reply, String> {
        let nested = |kind: u16| {
            message.attrs.iter().find_map(|a| match a {
                Attr::Value(k, bytes) if *k == kind => Some(bytes.as_slice()),
                _ => None,
            })
        };
        let result = match message.command {
            command::NEW_SERVICE => nested(CMD_ATTR_SERVICE)
                .ok_or_else(|| DecodeError::from("no service attribute"))
                .and_then(parse_service)
                .map(Reply::Service),
            command::NEW_DEST => nested(CMD_ATTR_DEST)
                .ok_or_else(|| DecodeError::from("no destination attribute"))
                .and_then(parse_dest)
                .map(Reply::Dest),
            command::SET_INFO | command::GET_INFO => {
                let values: Vec<(u16, &[u8])> = message
                    .attrs
                    .iter()
                    .filter_map(|a| match a {
                        Attr::Value(k, bytes) => Some((*k, bytes.as_slice())),
                        Attr::Nested(..) => None,
                    })
                    .collect();
                let fields = Fields(values);
                fields.u32(INFO_ATTR_VERSION).and_then(|version| {
                    Ok(Reply::Info(Info {
                        version,
                        connection_table_size: fields.u32(INFO_ATTR_CONN_TAB_SIZE)?,
                    }))
                })
            }
            other => Err(DecodeError::from(format!("unexpected command {other}"))),
        };
        result.map_err(|e| format!("a malformed IPVS message: {e}"))
    }
}

/// Attributes by kind, read as the kernel's policy types them.
struct Fields<'a>(Vec<(u16, &'a [u8])>);

impl<'a> Fields<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Fields<'a>, DecodeError> {
        attributes(bytes).map(Fields)
    }

    fn get(&self, kind: u16) -> Option<&'a [u8]> {
        self.0.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }

    fn bytes<const N: usize>(&self, kind: u16) -> Result<[u8; N], DecodeError> {
        let value = self
            .get(kind)
            .ok_or_else(|| DecodeError::from(format!("attribute {kind} missing")))?;
        value
            .get(..N)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| DecodeError::from(format!("attribute {kind}: {} bytes", value.len())))
    }

    fn u16(&self, kind: u16) -> Result<u16, DecodeError> {
        self.bytes(kind).map(u16::from_ne_bytes)
    }

    fn be16(&self, kind: u16) -> Result<u16, DecodeError> {
        self.bytes(kind).map(u16::from_be_bytes)
    }

    fn u32(&self, kind: u16) -> Result<u32, DecodeError> {
        self.bytes(kind).map(u32::from_ne_bytes)
    }

    /// A counter: u64 in STATS64 and for STATS' byte counts, else u32.
    fn counter(&self, kind: u16) -> Result<u64, DecodeError> {
        match self.get(kind).map(<[u8]>::len) {
            Some(8) => self.bytes(kind).map(u64::from_ne_bytes),
            _ => self.u32(kind).map(u64::from),
        }
    }

    fn address(&self, kind: u16, family: u16) -> Result<IpAddr, DecodeError> {
        let bytes: [u8; 16] = self.bytes(kind)?;
        Ok(match family {
            AF_INET6 => IpAddr::V6(Ipv6Addr::from(bytes)),
            _ => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        })
    }

    fn stats(&self, stats64: u16, stats: u16) -> Result<Stats, DecodeError> {
        let Some(nested) = self.get(stats64).or_else(|| self.get(stats)) else {
            return Ok(Stats::default());
        };
        let f = Fields::parse(nested)?;
        Ok(Stats {
            connections: f.counter(STATS_ATTR_CONNS)?,
            packets_in: f.counter(STATS_ATTR_INPKTS)?,
            packets_out: f.counter(STATS_ATTR_OUTPKTS)?,
            bytes_in: f.counter(STATS_ATTR_INBYTES)?,
            bytes_out: f.counter(STATS_ATTR_OUTBYTES)?,
            cps: f.counter(STATS_ATTR_CPS)?,
            pps_in: f.counter(STATS_ATTR_INPPS)?,
            pps_out: f.counter(STATS_ATTR_OUTPPS)?,
            bps_in: f.counter(STATS_ATTR_INBPS)?,
            bps_out: f.counter(STATS_ATTR_OUTBPS)?,
        })
    }
}

fn parse_service(bytes: &[u8]) -> Result<Service, DecodeError> {
    let f = Fields::parse(bytes)?;
    let family = f.u16(SVC_ATTR_AF)?;
    let fwmark = f.u32(SVC_ATTR_FWMARK).unwrap_or(0);
    let (protocol, address, port) = match fwmark {
        0 => (
            f.u16(SVC_ATTR_PROTOCOL)?,
            f.address(SVC_ATTR_ADDR, family)?,
            f.be16(SVC_ATTR_PORT)?,
        ),
        _ => (0, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    };
    let scheduler = f
        .get(SVC_ATTR_SCHED_NAME)
        .ok_or_else(|| DecodeError::from("no scheduler"))?;
    let scheduler = String::from_utf8_lossy(scheduler.split(|b| *b == 0).next().unwrap_or(&[]));
    let flags: [u8; 8] = f.bytes(SVC_ATTR_FLAGS)?;
    let (value, mask) = flags.split_at(4);
    let flags = u32::from_ne_bytes(value.try_into().unwrap_or_default())
        & u32::from_ne_bytes(mask.try_into().unwrap_or_default());
    Ok(Service {
        family,
        protocol,
        address,
        port,
        fwmark,
        scheduler: scheduler.into_owned(),
        flags,
        timeout: f.u32(SVC_ATTR_TIMEOUT)?,
        netmask: f.u32(SVC_ATTR_NETMASK)?,
        stats: f.stats(SVC_ATTR_STATS64, SVC_ATTR_STATS)?,
    })
}

fn parse_dest(bytes: &[u8]) -> Result<Dest, DecodeError> {
    let f = Fields::parse(bytes)?;
    let family = f.u16(DEST_ATTR_ADDR_FAMILY).unwrap_or(AF_INET);
    Ok(Dest {
        family,
        address: f.address(DEST_ATTR_ADDR, family)?,
        port: f.be16(DEST_ATTR_PORT)?,
        forward: f.u32(DEST_ATTR_FWD_METHOD)?,
        weight: f.u32(DEST_ATTR_WEIGHT)?,
        upper_threshold: f.u32(DEST_ATTR_U_THRESH)?,
        lower_threshold: f.u32(DEST_ATTR_L_THRESH)?,
        active: f.u32(DEST_ATTR_ACTIVE_CONNS)?,
        inactive: f.u32(DEST_ATTR_INACT_CONNS)?,
        persistent: f.u32(DEST_ATTR_PERSIST_CONNS)?,
        stats: f.stats(DEST_ATTR_STATS64, DEST_ATTR_STATS)?,
    })
}

/// What an errno from the kernel means for `request`'s command, in
/// ipvsadm's words where it has some (`ipvs_strerror`).
pub fn error_text(command: u8, errno: i32) -> String {
    const EPERM: i32 = 1;
    const ENOENT: i32 = 2;
    const ESRCH: i32 = 3;
    const EEXIST: i32 = 17;
    const EINVAL: i32 = 22;
    let dest = matches!(
        command,
        command::NEW_DEST | command::SET_DEST | command::DEL_DEST | command::GET_DEST
    );
    let meaning = match (errno, dest) {
        (EPERM, _) => Some("permission denied (CAP_NET_ADMIN is needed)"),
        (EEXIST, false) => Some("service already exists"),
        (EEXIST, true) => Some("destination already exists"),
        (ESRCH, _) => Some("no such service"),
        (ENOENT, false) => Some("scheduler not found"),
        (ENOENT, true) => Some("no such destination"),
        (EINVAL, _) => Some("invalid argument"),
        _ => None,
    };
    let system = std::io::Error::from_raw_os_error(errno);
    match meaning {
        Some(meaning) => format!("{meaning} ({system})"),
        None => system.to_string(),
    }
}

#[cfg(test)]
mod tests;
