//! The codec against the bytes `ipvsadm` (1.31, on libnl 3) sends.
//!
//! No kernel here has IPVS, so the expected messages are written out by
//! hand from libipvs's source: `ipvs_nl_message` (`genlmsg_put` with the
//! family's id, command, version 1, no flags), `nl_send_auto_complete`
//! (adds NLM_F_REQUEST | NLM_F_ACK, fills the sequence number from the
//! socket's counter and the port id from its address), `nla_nest_start`
//! (sets NLA_F_NESTED), `ipvs_nl_fill_service_attr` and
//! `ipvs_nl_fill_dest_attr` (every attribute, in order), with the command
//! entry `ipvsadm.c`'s `process_options` makes (weight 1, direct routing
//! and a 0xffffffff netmask unless told otherwise; no scheduler but for
//! -A and -E). The sequence number (libnl starts it at the time of day)
//! and the port id differ from run to run: both are zeroed in each message
//! before comparing. The family id is the one in the expected message.
//!
//! The real ipvsadm's messages, recorded in the VM (`recorded/`, see
//! its README), are the expectations: each request of ours is compared
//! whole with the recorded one (sequence number and port id zeroed, the
//! family id the recording's), and the kernel's recorded replies are
//! decoded.

use super::*;

/// The family id written into the expected messages (the kernel assigns
/// it at boot).
const FAMILY: u16 = 0x24;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Bytes 8..16, the sequence number and port id, zeroed.
fn normalised(mut message: Vec<u8>) -> Vec<u8> {
    message[8..16].fill(0);
    message
}

/// Our encoding of `request`, for the family the expected message names.
fn ours(request: &Request, expected: &[u8]) -> Vec<u8> {
    let family = u16::from_ne_bytes([expected[4], expected[5]]);
    normalised(encode(request, family, 0x6789_abcd))
}

const AF: &[u8] = &[6, 0, 1, 0, 2, 0, 0, 0];
const TCP: &[u8] = &[6, 0, 2, 0, 6, 0, 0, 0];
const UDP: &[u8] = &[6, 0, 2, 0, 17, 0, 0, 0];
#[rustfmt::skip]
const VIP: &[u8] = &[20, 0, 3, 0, 10, 96, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const PORT_80: &[u8] = &[6, 0, 4, 0, 0, 80, 0, 0];
const PORT_53: &[u8] = &[6, 0, 4, 0, 0, 53, 0, 0];
const SCHED_RR: &[u8] = &[7, 0, 6, 0, b'r', b'r', 0, 0];
const SCHED_NONE: &[u8] = &[5, 0, 6, 0, 0, 0, 0, 0];
const FLAGS_PERSISTENT: &[u8] = &[12, 0, 7, 0, 1, 0, 0, 0, 255, 255, 255, 255];
const FLAGS_NONE: &[u8] = &[12, 0, 7, 0, 0, 0, 0, 0, 255, 255, 255, 255];
const TIMEOUT_10800: &[u8] = &[8, 0, 8, 0, 0x30, 0x2a, 0, 0];
const TIMEOUT_0: &[u8] = &[8, 0, 8, 0, 0, 0, 0, 0];
const NETMASK: &[u8] = &[8, 0, 9, 0, 255, 255, 255, 255];
/// IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED, 84 bytes.
const SERVICE_NEST: &[u8] = &[84, 0, 1, 0x80];

/// A nlmsghdr (seq and port id zero) and a genlmsghdr.
fn header(length: u8, command: u8) -> Vec<u8> {
    vec![
        length, 0, 0, 0, 0x24, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, command, 1, 0, 0,
    ]
}

/// The service of -a, -e, -d and -D: no scheduler, flags or timeout.
fn bare_service() -> Vec<u8> {
    cat(&[
        SERVICE_NEST,
        AF,
        TCP,
        VIP,
        PORT_80,
        SCHED_NONE,
        FLAGS_NONE,
        TIMEOUT_0,
        NETMASK,
    ])
}

/// IPVS_CMD_ATTR_DEST for 10.244.1.5:8080.
fn dest(forward: u8, weight: u8) -> Vec<u8> {
    cat(&[
        &[96, 0, 2, 0x80],
        &[6, 0, 11, 0, 2, 0, 0, 0],
        &[
            20, 0, 1, 0, 10, 244, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        &[6, 0, 2, 0, 0x1f, 0x90, 0, 0],
        &[8, 0, 3, 0, forward, 0, 0, 0],
        &[8, 0, 4, 0, weight, 0, 0, 0],
        &[5, 0, 13, 0, 0, 0, 0, 0],
        &[6, 0, 14, 0, 0, 0, 0, 0],
        &[6, 0, 15, 0, 0, 0, 0, 0],
        &[8, 0, 5, 0, 0, 0, 0, 0],
        &[8, 0, 6, 0, 0, 0, 0, 0],
    ])
}

fn service(protocol: u16, port: u16, scheduler: &str, flags: u32, timeout: u32) -> Service {
    Service {
        family: AF_INET,
        protocol,
        address: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10)),
        port,
        fwmark: 0,
        scheduler: scheduler.into(),
        flags,
        timeout,
        netmask: u32::MAX,
        stats: Stats::default(),
    }
}

fn real(forward: u32, weight: u32) -> Dest {
    let backend = crate::model::Backend {
        ip: Ipv4Addr::new(10, 244, 1, 5),
        port: 8080,
    };
    Dest {
        forward,
        weight,
        ..crate::ipvs::plan::real_server(&backend)
    }
}

/// Each ipvsadm command, the file a recording of it goes in, and the
/// message libipvs sends for it.
fn cases() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        (
            "ipvsadm -A -t 10.96.0.10:80 -s rr -p 10800",
            "add-service-tcp",
            cat(&[
                &header(104, command::NEW_SERVICE),
                SERVICE_NEST,
                AF,
                TCP,
                VIP,
                PORT_80,
                SCHED_RR,
                FLAGS_PERSISTENT,
                TIMEOUT_10800,
                NETMASK,
            ]),
        ),
        (
            "ipvsadm -a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
            "add-dest",
            cat(&[
                &header(200, command::NEW_DEST),
                &bare_service(),
                &dest(0, 1),
            ]),
        ),
        (
            "ipvsadm -e -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 0",
            "edit-dest",
            cat(&[
                &header(200, command::SET_DEST),
                &bare_service(),
                &dest(0, 0),
            ]),
        ),
        (
            "ipvsadm -d -t 10.96.0.10:80 -r 10.244.1.5:8080",
            "del-dest",
            cat(&[
                &header(200, command::DEL_DEST),
                &bare_service(),
                &dest(3, 1),
            ]),
        ),
        (
            "ipvsadm -D -t 10.96.0.10:80",
            "del-service",
            cat(&[&header(104, command::DEL_SERVICE), &bare_service()]),
        ),
        (
            "ipvsadm -A -u 10.96.0.10:53 -s rr",
            "add-service-udp",
            cat(&[
                &header(104, command::NEW_SERVICE),
                SERVICE_NEST,
                AF,
                UDP,
                VIP,
                PORT_53,
                SCHED_RR,
                FLAGS_NONE,
                TIMEOUT_0,
                NETMASK,
            ]),
        ),
    ]
}

/// The command entries ipvsadm makes of the same command lines, as our
/// requests, in the order of [`cases`].
fn check(index: usize, expected: &[u8]) {
    let persistent = service(IPPROTO_TCP, 80, "rr", F_PERSISTENT, 10800);
    let bare = service(IPPROTO_TCP, 80, "", 0, 0);
    let udp = service(IPPROTO_UDP, 53, "rr", 0, 0);
    let (masq, drained, routed) = (
        real(forward::MASQ, 1),
        real(forward::MASQ, 0),
        real(forward::ROUTE, 1),
    );
    let requests = [
        Request::NewService(&persistent),
        Request::NewDest(&bare, &masq),
        Request::SetDest(&bare, &drained),
        Request::DelDest(&bare, &routed),
        Request::DelService(&bare),
        Request::NewService(&udp),
    ];
    let (command_line, _, _) = &cases()[index];
    assert_eq!(
        ours(&requests[index], expected),
        normalised(expected.to_vec()),
        "{command_line}"
    );
}

/// A recording's message: its hex lines, comments skipped.
fn recorded(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/ipvs/recorded")
        .join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|h| u8::from_str_radix(h, 16).expect("a hex byte"))
        .collect()
}

#[test]
fn requests_are_whole_the_messages_the_real_ipvsadm_sent() {
    for (index, (_, file, _)) in cases().iter().enumerate() {
        let message = recorded(file);
        assert_eq!(
            u32::from_ne_bytes(message[..4].try_into().unwrap()) as usize,
            message.len(),
            "{file}"
        );
        check(index, &message);
    }
    // ipvsadm -Ln's requests: GET_INFO, the GET_SERVICE dump, GET_DEST.
    let family = u16::from_ne_bytes([
        recorded("list-1-get-info")[4],
        recorded("list-1-get-info")[5],
    ]);
    assert_eq!(
        normalised(encode(&Request::GetInfo, family, 1)),
        recorded("list-1-get-info")
    );
    assert_eq!(
        normalised(encode(&Request::GetServices, family, 1)),
        recorded("list-2-get-service")
    );
}

/// The replies of a recorded exchange, decoded.
fn recorded_replies(name: &str) -> Vec<Reply> {
    (1..)
        .map_while(|n| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("src/ipvs/recorded/{name}.reply-{n}.hex"));
            path.exists()
                .then(|| recorded(&format!("{name}.reply-{n}")))
        })
        .flat_map(|bytes| messages::<GenlMessage<IpvsMessage>>(&bytes).unwrap())
        .filter_map(|m| match m.payload {
            NetlinkPayload::InnerMessage(genl) => Some(Reply::parse(&genl.payload).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_kernels_recorded_dumps_decode_and_list_as_ipvsadm_does() {
    let info = match recorded_replies("list-1-get-info").as_slice() {
        [Reply::Info(info)] => *info,
        other => panic!("{other:?}"),
    };
    assert_eq!(info.version_text(), "1.2.1");
    let services: Vec<Service> = recorded_replies("list-2-get-service")
        .into_iter()
        .map(|r| match r {
            Reply::Service(s) => s,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(services.len(), 2);
    let mut listed = Vec::new();
    for service in services {
        // Each GET_DEST recording asks for one service: match it by its
        // request's bytes.
        let dests = ["list-3-get-dest", "list-4-get-dest"]
            .into_iter()
            .find(|name| {
                let request = recorded(name);
                let family = u16::from_ne_bytes([request[4], request[5]]);
                normalised(encode(&Request::GetDests(&service), family, 1)) == request
            })
            .map(|name| {
                recorded_replies(name)
                    .into_iter()
                    .map(|r| match r {
                        Reply::Dest(d) => d,
                        other => panic!("{other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_else(|| panic!("no GET_DEST recorded for {service:?}"));
        listed.push((service, dests));
    }
    let text = super::super::listing::format(&info, &listed);
    // What ipvsadm -Ln printed for the same state in the VM.
    assert_eq!(
        text,
        "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.10:80 rr persistent 10800
  -> 10.244.1.5:8080              Masq    1      0          0         
UDP  10.96.0.10:53 rr
"
    );
}

#[test]
fn dumps_and_info_requests_carry_the_dump_flag_and_no_attributes() {
    let services = encode(&Request::GetServices, FAMILY, 9);
    assert_eq!(services.len(), 20);
    assert_eq!(&services[6..8], &(0x0305u16).to_ne_bytes());
    assert_eq!(&services[8..12], &9u32.to_ne_bytes());
    assert_eq!(services[16], command::GET_SERVICE);
    let info = encode(&Request::GetInfo, FAMILY, 1);
    assert_eq!(
        (&info[6..8], info[16]),
        (&5u16.to_ne_bytes()[..], command::GET_INFO)
    );
    let bare = service(IPPROTO_TCP, 80, "", 0, 0);
    let dests = encode(&Request::GetDests(&bare), FAMILY, 2);
    assert_eq!(dests.len(), 68, "the service's identity only");
}

/// One attribute as the kernel writes it (no NLA_F_NESTED), padded.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut bytes = ((value.len() + 4) as u16).to_ne_bytes().to_vec();
    bytes.extend_from_slice(&kind.to_ne_bytes());
    bytes.extend_from_slice(value);
    bytes.resize((bytes.len() + 3) & !3, 0);
    bytes
}

/// A kernel message: nlmsghdr (NLM_F_MULTI), genlmsghdr, attributes.
fn kernel_message(command: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    let body = attrs.concat();
    let mut bytes = ((20 + body.len()) as u32).to_ne_bytes().to_vec();
    bytes.extend_from_slice(&FAMILY.to_ne_bytes());
    bytes.extend_from_slice(&2u16.to_ne_bytes());
    bytes.extend_from_slice(&[0x11, 0, 0, 0, 0x22, 0, 0, 0, command, 1, 0, 0]);
    bytes.extend(body);
    bytes
}

/// STATS (u32 counters but the byte counts) or STATS64 (all u64).
fn stats(wide: bool, connections: u64) -> Vec<u8> {
    let counter = |kind: u16, value: u64| match wide || kind == 4 || kind == 5 {
        true => nla(kind, &value.to_ne_bytes()),
        false => nla(kind, &(value as u32).to_ne_bytes()),
    };
    (1..=10)
        .map(|kind| {
            counter(
                kind,
                if kind == 1 {
                    connections
                } else {
                    100 + kind as u64
                },
            )
        })
        .collect::<Vec<_>>()
        .concat()
}

#[test]
fn a_dump_decodes_into_services_with_stats_and_dests_with_connections() {
    let service_attrs = [
        nla(1, &2u16.to_ne_bytes()),
        nla(2, &6u16.to_ne_bytes()),
        nla(3, &[10, 96, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        nla(4, &80u16.to_be_bytes()),
        nla(6, b"rr\0"),
        nla(7, &[3, 0, 0, 0, 255, 255, 255, 255]),
        nla(8, &10800u32.to_ne_bytes()),
        nla(9, &[255; 4]),
        nla(10, &stats(false, 5)),
        nla(12, &stats(true, 7)),
    ]
    .concat();
    let dest_attrs = [
        nla(1, &[10, 244, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        nla(2, &8080u16.to_be_bytes()),
        nla(3, &0u32.to_ne_bytes()),
        nla(4, &1u32.to_ne_bytes()),
        nla(13, &[0]),
        nla(14, &0u16.to_be_bytes()),
        nla(15, &0u16.to_ne_bytes()),
        nla(5, &0u32.to_ne_bytes()),
        nla(6, &0u32.to_ne_bytes()),
        nla(7, &3u32.to_ne_bytes()),
        nla(8, &4u32.to_ne_bytes()),
        nla(9, &1u32.to_ne_bytes()),
        nla(11, &2u16.to_ne_bytes()),
        nla(10, &stats(false, 2)),
    ]
    .concat();
    let done = cat(&[
        &20u32.to_ne_bytes(),
        &3u16.to_ne_bytes(),
        &2u16.to_ne_bytes(),
        &[0x11, 0, 0, 0, 0x22, 0, 0, 0, 0, 0, 0, 0],
    ]);
    let datagram = cat(&[
        &kernel_message(command::NEW_SERVICE, &[nla(1, &service_attrs)]),
        &kernel_message(command::NEW_DEST, &[nla(2, &dest_attrs)]),
        &done,
    ]);
    let decoded = messages::<GenlMessage<IpvsMessage>>(&datagram).unwrap();
    assert_eq!(decoded.len(), 3);
    let replies: Vec<Reply> = decoded
        .iter()
        .filter_map(|m| match &m.payload {
            NetlinkPayload::InnerMessage(genl) => Some(Reply::parse(&genl.payload).unwrap()),
            _ => None,
        })
        .collect();
    assert!(matches!(decoded[2].payload, NetlinkPayload::Done(_)));
    let Reply::Service(decoded) = &replies[0] else {
        panic!("{:?}", replies[0]);
    };
    let expected = Service {
        flags: F_PERSISTENT | 0x2,
        stats: decoded.stats,
        ..service(IPPROTO_TCP, 80, "rr", 0, 10800)
    };
    assert_eq!(decoded, &expected);
    assert_eq!(decoded.stats.connections, 7, "STATS64 wins over STATS");
    assert_eq!((decoded.stats.bytes_in, decoded.stats.bps_out), (104, 110));
    let Reply::Dest(dest) = &replies[1] else {
        panic!("{:?}", replies[1]);
    };
    assert_eq!(
        (dest.address, dest.port, dest.forward, dest.weight),
        (
            IpAddr::V4(Ipv4Addr::new(10, 244, 1, 5)),
            8080,
            forward::MASQ,
            1
        )
    );
    assert_eq!((dest.active, dest.inactive, dest.persistent), (3, 4, 1));
    assert_eq!(dest.stats.connections, 2, "STATS alone is read too");
}

#[test]
fn info_and_errors_decode() {
    let info = kernel_message(
        command::SET_INFO,
        &[
            nla(1, &0x0001_0201u32.to_ne_bytes()),
            nla(2, &4096u32.to_ne_bytes()),
        ],
    );
    let decoded = messages::<GenlMessage<IpvsMessage>>(&info).unwrap();
    let NetlinkPayload::InnerMessage(genl) = &decoded[0].payload else {
        panic!("{:?}", decoded[0]);
    };
    let Reply::Info(info) = Reply::parse(&genl.payload).unwrap() else {
        panic!("not info");
    };
    assert_eq!(info.version_text(), "1.2.1");
    assert_eq!(info.connection_table_size, 4096);
    let mut error = cat(&[
        &36u32.to_ne_bytes(),
        &2u16.to_ne_bytes(),
        &0u16.to_ne_bytes(),
        &[0; 8],
        &(-17i32).to_ne_bytes(),
    ]);
    error.extend_from_slice(&header(104, command::NEW_SERVICE)[..16]);
    let decoded = messages::<GenlMessage<IpvsMessage>>(&error).unwrap();
    let NetlinkPayload::Error(e) = &decoded[0].payload else {
        panic!("{:?}", decoded[0]);
    };
    assert_eq!(e.raw_code(), -17);
    assert!(error_text(command::NEW_SERVICE, 17).starts_with("service already exists ("));
    assert!(error_text(command::DEL_DEST, 2).starts_with("no such destination"));
    assert!(messages::<GenlMessage<IpvsMessage>>(&error[..30]).is_err());
}
