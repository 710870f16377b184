//! The kernel's IPVS state printed as `ipvsadm -Ln` prints it
//! (ipvsadm.c's `list_all`, `print_title` and `print_service_entry`):
//! services sorted by firewall mark, family, protocol, address and port,
//! each followed by its real servers sorted by address and port, in the
//! same columns, trailing spaces included. The order is libipvs's
//! (`ipvs_cmp_services`, `ipvs_cmp_dests`), which subtracts addresses as
//! unsigned 32-bit numbers and reads the difference as a signed `int`:
//! 172.18.0.3 comes before 10.96.0.1, as the real ipvsadm prints them.

use std::net::{IpAddr, Ipv4Addr};

use super::codec::{self, forward, Dest, Info, Service};

fn address_port(address: &IpAddr, port: u16) -> String {
    match address {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}

/// ipvsadm cuts IPv4 names to a column's width.
fn cut(mut text: String, family: u16, width: usize) -> String {
    if family != codec::AF_INET6 {
        text.truncate(width);
    }
    text
}

fn service_line(service: &Service) -> String {
    let name = match service.fwmark {
        0 => {
            let protocol = match service.protocol {
                codec::IPPROTO_TCP => "TCP",
                codec::IPPROTO_UDP => "UDP",
                _ => "SCTP",
            };
            let name = format!(
                "{protocol}  {}",
                address_port(&service.address, service.port)
            );
            cut(name, service.family, 33)
        }
        mark if service.family == codec::AF_INET6 => format!("FWM  {mark} IPv6"),
        mark => format!("FWM  {mark}"),
    };
    let mut line = format!("{name} {}", service.scheduler);
    if service.flags & codec::F_PERSISTENT != 0 {
        line.push_str(&format!(" persistent {}", service.timeout));
        match service.family {
            codec::AF_INET6 if service.netmask != 128 => {
                line.push_str(&format!(" mask {}", service.netmask))
            }
            codec::AF_INET if service.netmask != u32::MAX => line.push_str(&format!(
                " mask {}",
                Ipv4Addr::from(service.netmask.to_ne_bytes())
            )),
            _ => {}
        }
    }
    if service.flags & codec::F_ONEPACKET != 0 {
        line.push_str(" ops");
    }
    line
}

fn dest_line(service: &Service, dest: &Dest) -> String {
    let name = cut(address_port(&dest.address, dest.port), service.family, 28);
    let method = match dest.forward & 0x7 {
        forward::MASQ => "Masq",
        forward::LOCAL => "Local",
        forward::TUNNEL => "Tunnel",
        forward::ROUTE => "Route",
        _ => "",
    };
    format!(
        "  -> {name:<28} {method:<7} {:<6} {:<10} {:<10}",
        dest.weight, dest.active, dest.inactive
    )
}

/// `a - b` of two unsigned 32-bit numbers read as a C `int`.
fn c_difference(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

/// An address's 32-bit words, in host order (`ntohl`).
fn words(address: &IpAddr) -> Vec<u32> {
    match address {
        IpAddr::V4(ip) => vec![u32::from(*ip)],
        IpAddr::V6(ip) => ip
            .octets()
            .chunks(4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .collect(),
    }
}

/// libipvs's address comparison: word by word, each difference as an
/// `int`.
fn compare_addresses(a: &IpAddr, b: &IpAddr) -> i64 {
    words(a)
        .into_iter()
        .zip(words(b))
        .map(|(a, b)| c_difference(a, b))
        .find(|d| *d != 0)
        .unwrap_or(0)
}

/// `ipvs_cmp_services`: its sign.
fn compare_services(a: &Service, b: &Service) -> i64 {
    [
        c_difference(a.fwmark, b.fwmark),
        i64::from(a.family) - i64::from(b.family),
        i64::from(a.protocol) - i64::from(b.protocol),
        compare_addresses(&a.address, &b.address),
        i64::from(a.port) - i64::from(b.port),
    ]
    .into_iter()
    .find(|d| *d != 0)
    .unwrap_or(0)
}

/// `ipvs_cmp_dests`: its sign.
fn compare_dests(a: &&Dest, b: &&Dest) -> i64 {
    match compare_addresses(&a.address, &b.address) {
        0 => i64::from(a.port) - i64::from(b.port),
        d => d,
    }
}

/// A stable merge sort by a comparator that need not be a total order
/// (glibc's `qsort` is one such sort; the standard library's may panic
/// on an order that is not total).
fn merge_sort<T: Copy>(items: Vec<T>, compare: &impl Fn(&T, &T) -> i64) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let mut left = items;
    let right = left.split_off(left.len() / 2);
    let (left, right) = (merge_sort(left, compare), merge_sort(right, compare));
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (0, 0);
    while l < left.len() && r < right.len() {
        if compare(&left[l], &right[r]) <= 0 {
            out.push(left[l]);
            l += 1;
        } else {
            out.push(right[r]);
            r += 1;
        }
    }
    out.extend_from_slice(&left[l..]);
    out.extend_from_slice(&right[r..]);
    out
}

/// The listing of `services` (each with its real servers).
pub fn format(info: &Info, services: &[(Service, Vec<Dest>)]) -> String {
    let mut out = format!(
        "IP Virtual Server version {} (size={})\n",
        info.version_text(),
        info.connection_table_size
    );
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    let sorted = merge_sort(services.iter().collect(), &|a, b| {
        compare_services(&a.0, &b.0)
    });
    for (service, dests) in sorted {
        out.push_str(&service_line(service));
        out.push('\n');
        for dest in merge_sort(dests.iter().collect(), &compare_dests) {
            out.push_str(&dest_line(service, dest));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::plan;
    use crate::model::{Address, Backend, Protocol};

    fn service(last: u8, protocol: Protocol, affinity: Option<u32>) -> Service {
        let address = Address {
            ip: Ipv4Addr::new(10, 96, 0, last),
            port: if protocol == Protocol::Udp { 53 } else { 80 },
            protocol,
        };
        Service {
            // The kernel's own flag, HASHED, is not printed.
            flags: plan::virtual_server(&address, "rr", affinity).flags | 0x2,
            ..plan::virtual_server(&address, "rr", affinity)
        }
    }

    fn dest(last: u8, weight: u32, active: u32, inactive: u32) -> Dest {
        Dest {
            weight,
            active,
            inactive,
            ..plan::real_server(&Backend {
                ip: Ipv4Addr::new(10, 244, 1, last),
                port: 8080,
            })
        }
    }

    /// As the real ipvsadm printed them in the VM: the address difference
    /// read as an int puts 172.18.0.3 before 10.96.0.1.
    #[test]
    fn services_are_in_libipvs_order() {
        let mut node = service(1, Protocol::Tcp, None);
        node.address = IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3));
        let (a, b) = (
            service(10, Protocol::Tcp, None),
            service(1, Protocol::Tcp, None),
        );
        let udp = service(1, Protocol::Udp, None);
        let info = Info {
            version: 0x010201,
            connection_table_size: 4096,
        };
        let all: Vec<(Service, Vec<Dest>)> = [&udp, &a, &node, &b]
            .into_iter()
            .map(|s| (s.clone(), Vec::new()))
            .collect();
        let text = format(&info, &all);
        let order: Vec<&str> = text.lines().skip(3).collect();
        assert_eq!(
            order,
            [
                "TCP  172.18.0.3:80 rr",
                "TCP  10.96.0.1:80 rr",
                "TCP  10.96.0.10:80 rr",
                "UDP  10.96.0.1:53 rr",
            ]
        );
    }

    #[test]
    fn the_listing_is_ipvsadm_ln_column_for_column() {
        let info = Info {
            version: 0x0001_0201,
            connection_table_size: 4096,
        };
        let services = [
            (
                service(10, Protocol::Udp, None),
                vec![Dest {
                    port: 53,
                    ..dest(7, 1, 0, 0)
                }],
            ),
            (
                service(10, Protocol::Tcp, Some(10800)),
                vec![dest(12, 0, 3, 14), dest(5, 1, 0, 0)],
            ),
        ];
        let expected = [
            "IP Virtual Server version 1.2.1 (size=4096)",
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "TCP  10.96.0.10:80 rr persistent 10800",
            "  -> 10.244.1.5:8080              Masq    1      0          0         ",
            "  -> 10.244.1.12:8080             Masq    0      3          14        ",
            "UDP  10.96.0.10:53 rr",
            "  -> 10.244.1.7:53                Masq    1      0          0         ",
            "",
        ]
        .join("\n");
        assert_eq!(format(&info, &services), expected);
    }

    #[test]
    fn marks_masks_and_other_methods_print_as_ipvsadm_prints_them() {
        let mut masked = service(1, Protocol::Tcp, Some(60));
        masked.netmask = u32::from_ne_bytes([255, 255, 255, 0]);
        assert_eq!(
            service_line(&masked),
            "TCP  10.96.0.1:80 rr persistent 60 mask 255.255.255.0"
        );
        let marked = Service {
            fwmark: 7,
            ..service(1, Protocol::Tcp, None)
        };
        assert_eq!(service_line(&marked), "FWM  7 rr");
        let routed = Dest {
            forward: forward::ROUTE,
            ..dest(5, 2, 0, 0)
        };
        assert_eq!(
            dest_line(&marked, &routed),
            "  -> 10.244.1.5:8080              Route   2      0          0         "
        );
    }
}
