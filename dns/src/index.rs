//! The records of the cluster domain, kept from Services and EndpointSlices
//! as their watch events arrive, and the pure answer to one question: no
//! sockets and no API reads here. Each change recomputes the records of the
//! one Service it touches, so a query is a map lookup and a few clones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How long resolvers may keep an answer, in seconds (CoreDNS's default).
pub const TTL: u32 = 5;

/// The answer to one question about a name inside the cluster domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// NOERROR (records, or none for a name that exists: NODATA),
    /// NXDOMAIN, or SERVFAIL before the first list of Services and slices.
    pub code: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section: the zone's SOA when there is no answer.
    pub authority: Vec<Record>,
    /// The additional section: the addresses of SRV targets.
    pub additionals: Vec<Record>,
}

/// What a Service's names answer, computed when it or its slices change.
#[derive(Debug, Default)]
struct Records {
    /// `<svc>.<ns>.svc.<domain>`: A/AAAA records (the cluster IPs, or the
    /// ready endpoints of a headless Service), or one CNAME (ExternalName).
    own: Vec<Record>,
    /// `_<port>._<proto>.<svc>.<ns>.svc.<domain>`, one per named port.
    srv: Vec<Srv>,
    /// Headless: `<host>.<svc>.<ns>.svc.<domain>` by host label (the
    /// endpoint's `hostname`, else its address with dashes).
    hosts: HashMap<String, Vec<Record>>,
}

#[derive(Debug)]
struct Srv {
    /// `_http`
    port: String,
    /// `_tcp`
    proto: String,
    answers: Vec<Record>,
    additionals: Vec<Record>,
}

/// One Service's name: what is known of it, and its records.
#[derive(Debug, Default)]
struct Entry {
    service: Option<Arc<Service>>,
    /// Its EndpointSlices, by name.
    slices: BTreeMap<String, Arc<EndpointSlice>>,
    /// None while the Service itself is unknown.
    records: Option<Records>,
}

/// The cluster domain's records, kept from watch events.
#[derive(Debug)]
pub struct Index {
    domain: Name,
    /// The same, as queries are compared.
    zone: LowerName,
    domain_labels: usize,
    /// Counts the changes; the SOA's serial.
    serial: u32,
    soa: Record,
    services_synced: bool,
    slices_synced: bool,
    /// Namespace -> Service name -> entry.
    namespaces: HashMap<String, HashMap<String, Entry>>,
    /// (namespace, slice name) -> the Service the slice was filed under.
    slice_owner: HashMap<(String, String), String>,
}

impl Index {
    /// An empty index for the cluster domain `domain` (e.g. `cluster.local.`).
    /// It answers SERVFAIL until both Services and EndpointSlices have
    /// been listed once, so that no resolver caches a false NXDOMAIN.
    pub fn new(mut domain: Name) -> Index {
        domain.set_fqdn(true);
        let domain = domain.to_lowercase();
        Index {
            domain_labels: domain.iter().count(),
            soa: soa(&domain, 0),
            zone: LowerName::from(&domain),
            domain,
            serial: 0,
            services_synced: false,
            slices_synced: false,
            namespaces: HashMap::new(),
            slice_owner: HashMap::new(),
        }
    }

    /// Adds or replaces a Service.
    pub fn apply_service(&mut self, service: impl Into<Arc<Service>>) {
        let service = service.into();
        let (namespace, name) = names(&service.metadata);
        self.entry(&namespace, &name).service = Some(service);
        self.recompute(&namespace, &name);
    }

    /// Forgets a Service: its names answer NXDOMAIN.
    pub fn delete_service(&mut self, service: &Service) {
        let (namespace, name) = names(&service.metadata);
        self.entry(&namespace, &name).service = None;
        self.recompute(&namespace, &name);
    }

    /// Adds or replaces an EndpointSlice (filed under the Service its
    /// `kubernetes.io/service-name` label names).
    pub fn apply_slice(&mut self, slice: impl Into<Arc<EndpointSlice>>) {
        let slice = slice.into();
        let (namespace, name) = names(&slice.metadata);
        let before = self.detach_slice(&namespace, &name);
        let after = self.attach_slice(slice);
        // Each Service touched is recomputed once.
        for service in before
            .iter()
            .chain(after.iter().filter(|a| before.as_ref() != Some(*a)))
        {
            self.recompute(&namespace, service);
        }
    }

    /// Files `slice` under its Service, answering that Service's name
    /// (None: the slice names no Service); records are not recomputed.
    fn attach_slice(&mut self, slice: Arc<EndpointSlice>) -> Option<String> {
        let (namespace, name) = names(&slice.metadata);
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned()?;
        self.slice_owner
            .insert((namespace.clone(), name.clone()), service.clone());
        self.entry(&namespace, &service).slices.insert(name, slice);
        Some(service)
    }

    /// Forgets an EndpointSlice.
    pub fn delete_slice(&mut self, slice: &EndpointSlice) {
        let (namespace, name) = names(&slice.metadata);
        self.forget_slice(&namespace, &name);
    }

    /// Replaces every Service with `services`, the result of a (re)list.
    pub fn resync_services<S: Into<Arc<Service>>>(&mut self, services: Vec<S>) {
        let services: Vec<Arc<Service>> = services.into_iter().map(Into::into).collect();
        let listed: BTreeSet<(String, String)> =
            services.iter().map(|s| names(&s.metadata)).collect();
        for (namespace, name) in self.keys() {
            if !listed.contains(&(namespace.clone(), name.clone())) {
                self.entry(&namespace, &name).service = None;
                self.recompute(&namespace, &name);
            }
        }
        for service in services {
            self.apply_service(service);
        }
        self.services_synced = true;
    }

    /// Replaces every EndpointSlice with `slices`, the result of a (re)list.
    pub fn resync_slices<S: Into<Arc<EndpointSlice>>>(&mut self, slices: Vec<S>) {
        let mut touched = BTreeSet::new();
        for (namespace, name) in self.slice_owner.keys().cloned().collect::<Vec<_>>() {
            if let Some(service) = self.detach_slice(&namespace, &name) {
                touched.insert((namespace, service));
            }
        }
        for slice in slices {
            let slice = slice.into();
            let namespace = names(&slice.metadata).0;
            if let Some(service) = self.attach_slice(slice) {
                touched.insert((namespace, service));
            }
        }
        // Each Service once, however many slices it has.
        for (namespace, service) in touched {
            self.recompute(&namespace, &service);
        }
        self.slices_synced = true;
    }

    /// The answer to `qtype` questions about `name`, or None when `name`
    /// is outside the cluster domain.
    pub fn answer(&self, name: &LowerName, qtype: RecordType) -> Option<Answer> {
        if !self.zone.zone_of(name) {
            return None;
        }
        if !(self.services_synced && self.slices_synced) {
            return Some(self.empty(ResponseCode::ServFail));
        }
        // The labels below the domain, leftmost first: at most
        // `_port._proto.svc.ns.svc`.
        let mut labels = [""; 5];
        let below = name.iter().count() - self.domain_labels;
        if below > labels.len() {
            return Some(self.nxdomain());
        }
        for (slot, label) in labels.iter_mut().zip(name.iter().take(below)) {
            match std::str::from_utf8(label) {
                Ok(label) => *slot = label,
                Err(_) => return Some(self.nxdomain()),
            }
        }
        let labels = &labels[..below];
        let Some((&last, rest)) = labels.split_last() else {
            // The apex: its SOA.
            return Some(match qtype {
                RecordType::SOA | RecordType::ANY => Answer {
                    answers: vec![self.soa.clone()],
                    ..self.empty(ResponseCode::NoError)
                },
                _ => self.nodata(),
            });
        };
        if last != "svc" {
            return Some(self.nxdomain());
        }
        let (namespace, rest) = match rest.split_last() {
            None => return Some(self.nodata()),
            Some((namespace, rest)) => (self.namespaces.get(*namespace), rest),
        };
        let Some(namespace) = namespace.filter(|n| n.values().any(|e| e.records.is_some())) else {
            return Some(self.nxdomain());
        };
        let Some((service, rest)) = rest.split_last() else {
            return Some(self.nodata());
        };
        let Some(records) = namespace.get(*service).and_then(|e| e.records.as_ref()) else {
            return Some(self.nxdomain());
        };
        Some(match rest {
            [] => match records.own.first() {
                Some(cname) if cname.record_type() == RecordType::CNAME => Answer {
                    answers: vec![cname.clone()],
                    ..self.empty(ResponseCode::NoError)
                },
                // A headless Service with no ready endpoint has no name
                // yet: NXDOMAIN, as CoreDNS answers.
                _ if records.own.is_empty() => self.nxdomain(),
                _ => self.addresses(&records.own, qtype),
            },
            [host] => match records.hosts.get(*host) {
                Some(addresses) => self.addresses(addresses, qtype),
                None => self.nxdomain(),
            },
            [port, proto] => match records
                .srv
                .iter()
                .find(|s| s.port == *port && s.proto == *proto)
            {
                Some(srv) if matches!(qtype, RecordType::SRV | RecordType::ANY) => Answer {
                    answers: srv.answers.clone(),
                    additionals: srv.additionals.clone(),
                    ..self.empty(ResponseCode::NoError)
                },
                Some(_) => self.nodata(),
                None => self.nxdomain(),
            },
            _ => self.nxdomain(),
        })
    }

    /// The address records of `records` that answer `qtype`; NODATA if none.
    fn addresses(&self, records: &[Record], qtype: RecordType) -> Answer {
        let answers: Vec<Record> = records
            .iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .cloned()
            .collect();
        if answers.is_empty() {
            return self.nodata();
        }
        Answer {
            answers,
            ..self.empty(ResponseCode::NoError)
        }
    }

    fn empty(&self, code: ResponseCode) -> Answer {
        Answer {
            code,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }

    /// The name exists, without records of the type asked.
    fn nodata(&self) -> Answer {
        Answer {
            authority: vec![self.soa.clone()],
            ..self.empty(ResponseCode::NoError)
        }
    }

    fn nxdomain(&self) -> Answer {
        Answer {
            authority: vec![self.soa.clone()],
            ..self.empty(ResponseCode::NXDomain)
        }
    }

    fn entry(&mut self, namespace: &str, name: &str) -> &mut Entry {
        self.namespaces
            .entry(namespace.to_owned())
            .or_default()
            .entry(name.to_owned())
            .or_default()
    }

    fn keys(&self) -> Vec<(String, String)> {
        self.namespaces
            .iter()
            .flat_map(|(namespace, entries)| {
                entries.keys().map(|name| (namespace.clone(), name.clone()))
            })
            .collect()
    }

    fn forget_slice(&mut self, namespace: &str, name: &str) {
        if let Some(service) = self.detach_slice(namespace, name) {
            self.recompute(namespace, &service);
        }
    }

    /// Unfiles the slice `namespace/name`, answering the Service it was
    /// filed under; records are not recomputed.
    fn detach_slice(&mut self, namespace: &str, name: &str) -> Option<String> {
        let service = self
            .slice_owner
            .remove(&(namespace.to_owned(), name.to_owned()))?;
        self.entry(namespace, &service).slices.remove(name);
        Some(service)
    }

    /// Recomputes one Service's records after a change, and drops its
    /// entry once nothing is known of it.
    fn recompute(&mut self, namespace: &str, name: &str) {
        self.serial = self.serial.wrapping_add(1);
        self.soa = soa(&self.domain, self.serial);
        let Some(entries) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        entry.records = entry
            .service
            .as_ref()
            .map(|service| records(&self.domain, service, &entry.slices));
        if entry.service.is_none() && entry.slices.is_empty() {
            entries.remove(name);
            if entries.is_empty() {
                self.namespaces.remove(namespace);
            }
        }
    }
}

/// The zone's SOA, as CoreDNS writes it.
fn soa(domain: &Name, serial: u32) -> Record {
    let name = |label: &str| {
        Name::from_labels(label.split('.'))
            .and_then(|n| n.append_domain(domain))
            .expect("a name under the cluster domain")
    };
    Record::from_rdata(
        domain.clone(),
        TTL,
        RData::SOA(SOA::new(
            name("ns.dns"),
            name("hostmaster"),
            serial,
            7200,
            1800,
            86400,
            TTL,
        )),
    )
}

fn names(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// `<labels>.<domain>`, or None when a label is not a DNS label.
fn under(labels: &[&str], domain: &Name) -> Option<Name> {
    Name::from_labels(labels.iter().copied())
        .and_then(|n| n.append_domain(domain))
        .ok()
}

fn address_record(name: &Name, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name.clone(), TTL, data)
}

/// An endpoint's host label: its `hostname`, else its address with dashes
/// (`10-244-1-5`), as CoreDNS names headless endpoints.
fn host_label(endpoint: &Endpoint, ip: IpAddr) -> String {
    match endpoint.hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(hostname) => hostname.to_ascii_lowercase(),
        None => ip.to_string().replace(['.', ':'], "-"),
    }
}

/// What `service`'s names answer, given its EndpointSlices.
fn records(
    domain: &Name,
    service: &Service,
    slices: &BTreeMap<String, Arc<EndpointSlice>>,
) -> Records {
    let (namespace, name) = names(&service.metadata);
    let Some(own_name) = under(&[&name, &namespace, "svc"], domain) else {
        return Records::default();
    };
    let spec = service.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec
            .external_name
            .as_deref()
            .and_then(|t| Name::from_ascii(t.trim_end_matches('.')).ok())
            .map(|mut t| {
                t.set_fqdn(true);
                t
            });
        return Records {
            own: target
                .map(|t| Record::from_rdata(own_name, TTL, RData::CNAME(CNAME(t))))
                .into_iter()
                .collect(),
            ..Records::default()
        };
    }
    if spec.cluster_ip.as_deref() == Some("None") {
        return headless(&own_name, slices);
    }
    let ips: Vec<IpAddr> = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
        _ => spec
            .cluster_ip
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect(),
    };
    let own: Vec<Record> = ips
        .iter()
        .map(|ip| address_record(&own_name, *ip))
        .collect();
    let srv = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|port| {
            let port_name = port.name.as_deref().filter(|n| !n.is_empty())?;
            let (port_label, proto_label) = srv_labels(port_name, port.protocol.as_deref());
            let owner = under(&[&port_label, &proto_label], &own_name)?;
            let target = SRV::new(0, 100, u16::try_from(port.port).ok()?, own_name.clone());
            Some(Srv {
                port: port_label,
                proto: proto_label,
                answers: vec![Record::from_rdata(owner, TTL, RData::SRV(target))],
                additionals: own.clone(),
            })
        })
        .collect();
    Records {
        own,
        srv,
        hosts: HashMap::new(),
    }
}

/// `_http`, `_tcp`
fn srv_labels(port: &str, protocol: Option<&str>) -> (String, String) {
    (
        format!("_{}", port.to_ascii_lowercase()),
        format!("_{}", protocol.unwrap_or("TCP").to_ascii_lowercase()),
    )
}

/// One endpoint behind a headless Service's named port.
struct Target {
    port: u16,
    name: Name,
    /// The addresses of `name`.
    addresses: Vec<Record>,
}

/// A headless Service's records: its ready endpoints, by address, by host
/// label and per named port.
fn headless(own_name: &Name, slices: &BTreeMap<String, Arc<EndpointSlice>>) -> Records {
    let mut records = Records::default();
    let mut seen = BTreeSet::new();
    let mut targets: BTreeMap<(String, String), Vec<Target>> = BTreeMap::new();
    for slice in slices.values() {
        // Upstream: a nil `ready` means ready.
        let ready = slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false));
        for endpoint in ready {
            let ips: Vec<IpAddr> = endpoint
                .addresses
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
            let Some(first) = ips.first() else { continue };
            let host = host_label(endpoint, *first);
            let Some(host_name) = under(&[&host], own_name) else {
                continue;
            };
            let host_records: Vec<Record> = ips
                .iter()
                .map(|ip| address_record(&host_name, *ip))
                .collect();
            for ip in &ips {
                if seen.insert(*ip) {
                    records.own.push(address_record(own_name, *ip));
                }
            }
            records
                .hosts
                .entry(host)
                .or_default()
                .extend(host_records.iter().cloned());
            for port in slice.ports.iter().flatten() {
                let (Some(port_name), Some(number)) = (
                    port.name.as_deref().filter(|n| !n.is_empty()),
                    port.port.and_then(|p| u16::try_from(p).ok()),
                ) else {
                    continue;
                };
                targets
                    .entry(srv_labels(port_name, port.protocol.as_deref()))
                    .or_default()
                    .push(Target {
                        port: number,
                        name: host_name.clone(),
                        addresses: host_records.clone(),
                    });
            }
        }
    }
    for ((port_label, proto_label), targets) in targets {
        let Some(owner) = under(&[&port_label, &proto_label], own_name) else {
            continue;
        };
        // CoreDNS spreads the weight evenly over the targets.
        let weight = u16::try_from((100 / targets.len()).max(1)).unwrap_or(1);
        let mut srv = Srv {
            port: port_label,
            proto: proto_label,
            answers: Vec::new(),
            additionals: Vec::new(),
        };
        for Target {
            port,
            name,
            addresses,
        } in targets
        {
            let data = RData::SRV(SRV::new(0, weight, port, name));
            srv.answers
                .push(Record::from_rdata(owner.clone(), TTL, data));
            srv.additionals.extend(addresses);
        }
        records.srv.push(srv);
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).expect("a Service")
    }

    fn slice(value: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(value).expect("an EndpointSlice")
    }

    fn synced() -> Index {
        let mut index = Index::new(Name::from_ascii("cluster.local").unwrap());
        index.resync_services(Vec::<Service>::new());
        index.resync_slices(Vec::<EndpointSlice>::new());
        index
    }

    fn ask(index: &Index, name: &str, qtype: RecordType) -> Answer {
        index
            .answer(&LowerName::from(Name::from_ascii(name).unwrap()), qtype)
            .expect("a name inside the cluster domain")
    }

    /// The answer section as `name type data` lines.
    fn lines(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
            .collect()
    }

    fn web() -> Service {
        service(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.100.10", "clusterIPs": ["10.96.100.10"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 9000}]}
        }))
    }

    fn headless_db() -> Service {
        service(json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
        }))
    }

    fn db_slice(name: &str, endpoints: serde_json::Value) -> EndpointSlice {
        slice(json!({
            "metadata": {"name": name, "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
    }

    #[test]
    fn a_cluster_ip_service_answers_its_cluster_ip() {
        let mut index = synced();
        index.apply_service(web());
        for name in ["web.shop.svc.cluster.local.", "WEB.Shop.svc.cluster.local."] {
            let answer = ask(&index, name, RecordType::A);
            assert_eq!(answer.code, ResponseCode::NoError);
            assert_eq!(
                lines(&answer.answers),
                ["web.shop.svc.cluster.local. A 10.96.100.10"]
            );
            assert!(answer.authority.is_empty());
        }
    }

    #[test]
    fn nodeport_and_loadbalancer_services_answer_their_cluster_ip_too() {
        let mut index = synced();
        for (name, kind, ip) in [
            ("np", "NodePort", "10.96.100.11"),
            ("lb", "LoadBalancer", "10.96.100.12"),
        ] {
            index.apply_service(service(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"type": kind, "clusterIP": ip}
            })));
            let answer = ask(
                &index,
                &format!("{name}.default.svc.cluster.local"),
                RecordType::A,
            );
            assert_eq!(
                lines(&answer.answers),
                [format!("{name}.default.svc.cluster.local. A {ip}")]
            );
        }
    }

    #[test]
    fn another_type_of_a_known_name_is_nodata_with_the_soa() {
        let mut index = synced();
        index.apply_service(web());
        let answer = ask(&index, "web.shop.svc.cluster.local", RecordType::AAAA);
        assert_eq!(answer.code, ResponseCode::NoError);
        assert!(answer.answers.is_empty());
        assert_eq!(answer.authority[0].record_type(), RecordType::SOA);
        assert_eq!(answer.authority[0].name.to_string(), "cluster.local.");
    }

    #[test]
    fn unknown_names_are_nxdomain_with_the_soa() {
        let mut index = synced();
        index.apply_service(web());
        for name in [
            "nope.shop.svc.cluster.local",
            "web.other.svc.cluster.local",
            "web.shop.pod.cluster.local",
            "x.web.shop.svc.cluster.local",
            "_http._udp.web.shop.svc.cluster.local",
            "a.b.c.d.e.f.cluster.local",
        ] {
            let answer = ask(&index, name, RecordType::A);
            assert_eq!(answer.code, ResponseCode::NXDomain, "{name}");
            assert_eq!(lines(&answer.authority).len(), 1, "{name}");
            assert!(lines(&answer.authority)[0]
                .starts_with("cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local."));
        }
        // The names above the Services exist.
        for name in [
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
        ] {
            assert_eq!(
                ask(&index, name, RecordType::A).code,
                ResponseCode::NoError,
                "{name}"
            );
        }
        assert_eq!(
            ask(&index, "cluster.local", RecordType::SOA).answers[0].record_type(),
            RecordType::SOA
        );
    }

    #[test]
    fn names_outside_the_cluster_domain_are_not_answered() {
        let index = synced();
        let name = LowerName::from(Name::from_ascii("example.com").unwrap());
        assert_eq!(index.answer(&name, RecordType::A), None);
    }

    #[test]
    fn before_the_first_lists_cluster_names_are_servfail() {
        let mut index = Index::new(Name::from_ascii("cluster.local").unwrap());
        index.resync_services(vec![web()]);
        let answer = ask(&index, "web.shop.svc.cluster.local", RecordType::A);
        assert_eq!(answer.code, ResponseCode::ServFail);
        index.resync_slices(Vec::<EndpointSlice>::new());
        let answer = ask(&index, "web.shop.svc.cluster.local", RecordType::A);
        assert_eq!(answer.code, ResponseCode::NoError);
    }

    #[test]
    fn a_named_port_has_an_srv_record_with_the_address_as_additional() {
        let mut index = synced();
        index.apply_service(web());
        let answer = ask(
            &index,
            "_http._tcp.web.shop.svc.cluster.local",
            RecordType::SRV,
        );
        assert_eq!(
            lines(&answer.answers),
            ["_http._tcp.web.shop.svc.cluster.local. SRV 0 100 80 web.shop.svc.cluster.local."]
        );
        assert_eq!(
            lines(&answer.additionals),
            ["web.shop.svc.cluster.local. A 10.96.100.10"]
        );
        let nodata = ask(
            &index,
            "_http._tcp.web.shop.svc.cluster.local",
            RecordType::A,
        );
        assert_eq!(
            (nodata.code, nodata.answers.len()),
            (ResponseCode::NoError, 0)
        );
    }

    #[test]
    fn an_external_name_service_is_a_cname() {
        let mut index = synced();
        index.apply_service(service(json!({
            "metadata": {"name": "search", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "www.example.com"}
        })));
        for qtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
            let answer = ask(&index, "search.default.svc.cluster.local", qtype);
            assert_eq!(
                lines(&answer.answers),
                ["search.default.svc.cluster.local. CNAME www.example.com."]
            );
        }
    }

    #[test]
    fn a_headless_service_answers_its_ready_endpoints() {
        let mut index = synced();
        index.apply_service(headless_db());
        index.apply_slice(db_slice(
            "db-a",
            json!([
                {"addresses": ["10.244.1.5"], "conditions": {"ready": true}, "hostname": "db-0"},
                {"addresses": ["10.244.1.6"], "conditions": {"ready": false}, "hostname": "db-1"},
                {"addresses": ["10.244.2.7"]},
            ]),
        ));
        index.apply_slice(db_slice(
            "db-b",
            json!([{"addresses": ["10.244.1.5"], "conditions": {"ready": true}}]),
        ));
        let answer = ask(&index, "db.shop.svc.cluster.local", RecordType::A);
        assert_eq!(
            lines(&answer.answers),
            [
                "db.shop.svc.cluster.local. A 10.244.1.5",
                "db.shop.svc.cluster.local. A 10.244.2.7"
            ]
        );
    }

    #[test]
    fn a_headless_endpoints_hostname_answers_its_address() {
        let mut index = synced();
        index.apply_service(headless_db());
        index.apply_slice(db_slice(
            "db-a",
            json!([
                {"addresses": ["10.244.1.5"], "hostname": "db-0"},
                {"addresses": ["10.244.2.7"]},
                {"addresses": ["10.244.1.6"], "conditions": {"ready": false}, "hostname": "db-1"},
            ]),
        ));
        let answer = ask(&index, "db-0.db.shop.svc.cluster.local", RecordType::A);
        assert_eq!(
            lines(&answer.answers),
            ["db-0.db.shop.svc.cluster.local. A 10.244.1.5"]
        );
        let answer = ask(
            &index,
            "10-244-2-7.db.shop.svc.cluster.local",
            RecordType::A,
        );
        assert_eq!(
            lines(&answer.answers),
            ["10-244-2-7.db.shop.svc.cluster.local. A 10.244.2.7"]
        );
        let answer = ask(&index, "db-1.db.shop.svc.cluster.local", RecordType::A);
        assert_eq!(answer.code, ResponseCode::NXDomain);
    }

    #[test]
    fn a_headless_srv_names_each_endpoint_with_its_address_as_additional() {
        let mut index = synced();
        index.apply_service(headless_db());
        index.apply_slice(db_slice(
            "db-a",
            json!([
                {"addresses": ["10.244.1.5"], "hostname": "db-0"},
                {"addresses": ["10.244.2.7"]},
            ]),
        ));
        let answer = ask(
            &index,
            "_pg._tcp.db.shop.svc.cluster.local",
            RecordType::SRV,
        );
        assert_eq!(
            lines(&answer.answers),
            [
                "_pg._tcp.db.shop.svc.cluster.local. SRV 0 50 5432 db-0.db.shop.svc.cluster.local.",
                "_pg._tcp.db.shop.svc.cluster.local. SRV 0 50 5432 10-244-2-7.db.shop.svc.cluster.local."
            ]
        );
        assert_eq!(
            lines(&answer.additionals),
            [
                "db-0.db.shop.svc.cluster.local. A 10.244.1.5",
                "10-244-2-7.db.shop.svc.cluster.local. A 10.244.2.7"
            ]
        );
    }

    #[test]
    fn deletions_and_relists_remove_names() {
        let mut index = synced();
        index.apply_service(web());
        index.apply_service(headless_db());
        let slice = db_slice("db-a", json!([{"addresses": ["10.244.1.5"]}]));
        index.apply_slice(slice.clone());
        index.delete_slice(&slice);
        let answer = ask(&index, "db.shop.svc.cluster.local", RecordType::A);
        assert_eq!(answer.code, ResponseCode::NXDomain, "no ready endpoint");
        index.delete_service(&web());
        let answer = ask(&index, "web.shop.svc.cluster.local", RecordType::A);
        assert_eq!(answer.code, ResponseCode::NXDomain);
        // A relist without the headless Service forgets it too.
        index.resync_services(Vec::<Service>::new());
        let answer = ask(&index, "db.shop.svc.cluster.local", RecordType::A);
        assert_eq!(answer.code, ResponseCode::NXDomain);
        assert!(index.namespaces.is_empty());
    }

    #[test]
    fn a_slice_moved_to_another_service_leaves_the_first() {
        let mut index = synced();
        index.apply_service(headless_db());
        let mut slice = db_slice("db-a", json!([{"addresses": ["10.244.1.5"]}]));
        index.apply_slice(slice.clone());
        slice
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(SERVICE_NAME_LABEL.into(), "other".into());
        index.apply_slice(slice);
        let answer = ask(&index, "db.shop.svc.cluster.local", RecordType::A);
        assert!(answer.answers.is_empty());
    }

    #[test]
    fn every_change_moves_the_soa_serial() {
        let mut index = synced();
        let serial =
            |index: &Index| match &ask(index, "cluster.local", RecordType::SOA).answers[0].data {
                RData::SOA(soa) => soa.serial,
                other => panic!("{other:?}"),
            };
        let before = serial(&index);
        index.apply_service(web());
        assert!(serial(&index) > before);
    }
}
