//! What a node's proxy programs, whatever the mode, computed without I/O
//! from Services and EndpointSlices as upstream's kube-proxy reads them
//! (`pkg/proxy/serviceport.go`, `endpointslicecache.go`,
//! `topology.go`'s `CategorizeEndpoints`):
//!
//! - a virtual server per (ClusterIP, port, protocol), per node address
//!   for a node port, per external IP and per load-balancer ingress IP;
//! - none for headless or ExternalName Services;
//! - ready endpoints only, or the serving-and-terminating ones when none
//!   is ready; only the node's own with a `Local` traffic policy;
//! - external traffic masqueraded unless its policy is `Local` (which
//!   keeps the client's address), ClientIP affinity with its timeout.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Upstream's default ClientIP affinity timeout: three hours.
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10800;

/// A transport protocol the proxy balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The protocol a Service or EndpointSlice port names (TCP when none).
    pub fn parse(name: Option<&str>) -> Option<Protocol> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Its name in lower case, as nft and ipvsadm print it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A Service, by namespace and name.
pub type ServiceKey = (String, String);

/// One port of a Service, as the proxy names it (`ns/name:port`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortName {
    /// The Service.
    pub service: ServiceKey,
    /// The port's name ("" for a Service's only, unnamed port).
    pub port: String,
    /// Its protocol.
    pub protocol: Protocol,
}

/// What one Service port asks of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Its name.
    pub name: PortName,
    /// The ClusterIPs (IPv4 ones).
    pub cluster_ips: Vec<Ipv4Addr>,
    /// The port on them.
    pub port: u16,
    /// The node port, if it has one.
    pub node_port: Option<u16>,
    /// `externalIPs` and the load-balancer ingress IPs, on `port`.
    pub external_ips: Vec<Ipv4Addr>,
    /// ClientIP affinity: its timeout in seconds.
    pub affinity: Option<u32>,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local` (only where external traffic
    /// reaches it).
    pub external_local: bool,
    /// Where `/healthz` answers the count of local endpoints.
    pub health_check_node_port: Option<u16>,
}

fn ipv4s<'a>(addresses: impl IntoIterator<Item = &'a String>) -> Vec<Ipv4Addr> {
    addresses
        .into_iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// The ports of `service` the proxy programs: none for a headless or
/// ExternalName Service, or one without a ClusterIP yet.
pub fn service_ports(service: &Service) -> Vec<ServicePort> {
    let (Some(spec), Some(namespace), Some(name)) = (
        service.spec.as_ref(),
        service.metadata.namespace.as_ref(),
        service.metadata.name.as_ref(),
    ) else {
        return Vec::new();
    };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    let primary = spec.cluster_ip.as_deref().unwrap_or("");
    if kind == "ExternalName" || primary.is_empty() || primary == "None" {
        return Vec::new();
    }
    let mut cluster_ips = ipv4s(spec.cluster_ips.iter().flatten());
    if cluster_ips.is_empty() {
        cluster_ips = ipv4s([&primary.to_owned()]);
    }
    let mut external_ips = ipv4s(spec.external_ips.iter().flatten());
    if kind == "LoadBalancer" {
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        external_ips.extend(ipv4s(
            ingress.iter().flat_map(|i| i.iter()).flat_map(|i| &i.ip),
        ));
    }
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_SECONDS)
    });
    let external = matches!(kind, "NodePort" | "LoadBalancer") || !external_ips.is_empty();
    let port = |p: i32| u16::try_from(p).ok().filter(|p| *p > 0);
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(ServicePort {
                name: PortName {
                    service: (namespace.clone(), name.clone()),
                    port: p.name.clone().unwrap_or_default(),
                    protocol: Protocol::parse(p.protocol.as_deref())?,
                },
                cluster_ips: cluster_ips.clone(),
                port: port(p.port)?,
                node_port: p.node_port.and_then(port),
                external_ips: external_ips.clone(),
                affinity,
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                external_local: external
                    && spec.external_traffic_policy.as_deref() == Some("Local"),
                health_check_node_port: spec.health_check_node_port.and_then(port),
            })
        })
        .collect()
}

/// One endpoint of a Service port, with what the proxy needs of its
/// conditions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its port.
    pub port: u16,
    /// `conditions.ready` (unset counts as ready, as upstream).
    pub ready: bool,
    /// `conditions.serving` (unset: as ready).
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// The node it runs on.
    pub node: Option<String>,
}

/// The port name and protocol an endpoint port is for.
pub type EndpointPort = (String, Protocol);

/// The Service an EndpointSlice belongs to (its
/// `kubernetes.io/service-name` label), and its IPv4 endpoints by port.
pub fn slice_endpoints(
    slice: &EndpointSlice,
) -> Option<(ServiceKey, BTreeMap<EndpointPort, Vec<Endpoint>>)> {
    let namespace = slice.metadata.namespace.clone()?;
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")?
        .clone();
    let mut ports = BTreeMap::new();
    if slice.address_type != "IPv4" {
        return Some(((namespace, service), ports));
    }
    for port in slice.ports.iter().flatten() {
        let (Some(number), Some(protocol)) = (
            port.port.and_then(|p| u16::try_from(p).ok()),
            Protocol::parse(port.protocol.as_deref()),
        ) else {
            continue;
        };
        let endpoints: Vec<Endpoint> = slice
            .endpoints
            .iter()
            .flat_map(|e| {
                let conditions = e.conditions.as_ref();
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                e.addresses.iter().filter_map(move |a| {
                    Some(Endpoint {
                        ip: a.parse().ok()?,
                        port: number,
                        ready,
                        serving: conditions.and_then(|c| c.serving).unwrap_or(ready),
                        terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                        node: e.node_name.clone(),
                    })
                })
            })
            .collect();
        let key = (port.name.clone().unwrap_or_default(), protocol);
        ports.insert(key, endpoints);
    }
    Some(((namespace, service), ports))
}

/// The node a proxy runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its name (endpoints on it are local).
    pub name: String,
    /// Its addresses: node ports answer on each.
    pub addresses: Vec<Ipv4Addr>,
}

/// Where traffic comes from: inside the cluster (a ClusterIP) or from
/// outside (a node port, an external or load-balancer IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Traffic {
    /// To a ClusterIP.
    Internal,
    /// To a node port, external IP or load-balancer IP.
    External,
}

/// A destination the proxy answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    /// The address.
    pub ip: Ipv4Addr,
    /// The port.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

/// A real server behind a virtual one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its port.
    pub port: u16,
}

/// What one address of a Service port leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virtual {
    /// The Service port.
    pub service: PortName,
    /// Which side of the cluster the traffic comes from.
    pub traffic: Traffic,
    /// ClientIP affinity: its timeout in seconds.
    pub affinity: Option<u32>,
    /// Whether the traffic is masqueraded (external, not `Local`).
    pub masquerade: bool,
    /// Where it goes, in order; none: it is refused.
    pub backends: Vec<Backend>,
}

/// What one Service port programs: its virtual servers, and the health
/// check of a `Local` external policy (its node port and local count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRules {
    /// Each address it answers on.
    pub virtuals: BTreeMap<Address, Virtual>,
    /// `(healthCheckNodePort, local endpoints)`.
    pub health_check: Option<(u16, usize)>,
}

/// The endpoints traffic may go to: the ready ones, else the serving and
/// terminating ones (upstream's ProxyTerminatingEndpoints); only the
/// node's own when `local`.
pub fn usable(endpoints: &[Endpoint], node: &str, local: bool) -> Vec<Backend> {
    let candidates: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| !local || e.node.as_deref() == Some(node))
        .collect();
    let ready: Vec<&Endpoint> = candidates.iter().copied().filter(|e| e.ready).collect();
    let chosen = match ready.is_empty() {
        false => ready,
        true => candidates
            .into_iter()
            .filter(|e| e.serving && e.terminating)
            .collect(),
    };
    let mut backends: Vec<Backend> = chosen
        .into_iter()
        .map(|e| Backend {
            ip: e.ip,
            port: e.port,
        })
        .collect();
    backends.sort();
    backends.dedup();
    backends
}

/// The rules of one Service port on `node`, given the endpoints of its
/// Service's slices for that port.
pub fn port_rules(port: &ServicePort, endpoints: &[Endpoint], node: &Node) -> PortRules {
    let internal = usable(endpoints, &node.name, port.internal_local);
    let external = usable(endpoints, &node.name, port.external_local);
    let virtual_of = |traffic| Virtual {
        service: port.name.clone(),
        traffic,
        affinity: port.affinity,
        masquerade: traffic == Traffic::External && !port.external_local,
        backends: match traffic {
            Traffic::Internal => internal.clone(),
            Traffic::External => external.clone(),
        },
    };
    let address = |ip, port_number| Address {
        ip,
        port: port_number,
        protocol: port.name.protocol,
    };
    let mut virtuals = BTreeMap::new();
    for ip in &port.cluster_ips {
        virtuals.insert(address(*ip, port.port), virtual_of(Traffic::Internal));
    }
    for ip in &port.external_ips {
        virtuals.insert(address(*ip, port.port), virtual_of(Traffic::External));
    }
    if let Some(node_port) = port.node_port {
        for ip in &node.addresses {
            virtuals.insert(address(*ip, node_port), virtual_of(Traffic::External));
        }
    }
    let health_check = port
        .health_check_node_port
        .filter(|_| port.external_local)
        .map(|p| (p, usable(endpoints, &node.name, true).len()));
    PortRules {
        virtuals,
        health_check,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"namespace": "default", "name": "web"}, "spec": spec}),
        )
        .unwrap()
    }

    fn node() -> Node {
        Node {
            name: "n1".into(),
            addresses: vec![Ipv4Addr::new(172, 18, 0, 2)],
        }
    }

    fn endpoint(last: u8, ready: bool, terminating: bool, node: &str) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::new(10, 244, 1, last),
            port: 8080,
            ready,
            serving: ready || terminating,
            terminating,
            node: Some(node.into()),
        }
    }

    #[test]
    fn headless_and_external_name_services_program_nothing() {
        let headless = service(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assert!(service_ports(&headless).is_empty());
        let external = service(
            json!({"type": "ExternalName", "externalName": "example.com", "ports": [{"port": 80}]}),
        );
        assert!(service_ports(&external).is_empty());
        let pending = service(json!({"ports": [{"port": 80}]}));
        assert!(service_ports(&pending).is_empty());
    }

    #[test]
    fn a_service_port_reads_its_addresses_affinity_and_policies() {
        let mut lb = service(json!({"type": "LoadBalancer", "clusterIP": "10.96.0.20",
            "clusterIPs": ["10.96.0.20"], "externalIPs": ["192.0.2.7"],
            "sessionAffinity": "ClientIP", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                      {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}));
        lb.status =
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "127.240.0.1"}]}}))
                .unwrap();
        let ports = service_ports(&lb);
        assert_eq!(ports.len(), 2);
        let http = &ports[0];
        assert_eq!(http.name.port, "http");
        assert_eq!(http.name.protocol, Protocol::Tcp);
        assert_eq!(http.cluster_ips, [Ipv4Addr::new(10, 96, 0, 20)]);
        assert_eq!(
            http.external_ips,
            [Ipv4Addr::new(192, 0, 2, 7), Ipv4Addr::new(127, 240, 0, 1)]
        );
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.affinity, Some(DEFAULT_AFFINITY_SECONDS));
        assert!(http.external_local && !http.internal_local);
        assert_eq!(ports[1].name.protocol, Protocol::Udp);
        let timed = service(
            json!({"clusterIP": "10.96.0.21", "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        );
        let port = &service_ports(&timed)[0];
        assert_eq!(port.affinity, Some(60));
        assert!(
            !port.external_local,
            "a ClusterIP Service has no external traffic"
        );
    }

    #[test]
    fn ready_endpoints_win_and_terminating_serving_ones_stand_in() {
        let all = [
            endpoint(3, true, false, "n1"),
            endpoint(2, false, false, "n1"),
            endpoint(4, false, true, "n2"),
        ];
        let ips = |b: Vec<Backend>| b.iter().map(|b| b.ip.octets()[3]).collect::<Vec<_>>();
        assert_eq!(ips(usable(&all, "n1", false)), [3]);
        assert_eq!(ips(usable(&all[1..], "n1", false)), [4]);
        assert!(usable(&all[1..], "n1", true).is_empty());
        let not_serving = Endpoint {
            serving: false,
            ..endpoint(5, false, true, "n1")
        };
        assert!(usable(&[not_serving], "n1", false).is_empty());
    }

    #[test]
    fn port_rules_cover_cluster_ips_node_ports_and_external_ips() {
        let port = ServicePort {
            name: PortName {
                service: ("default".into(), "web".into()),
                port: "http".into(),
                protocol: Protocol::Tcp,
            },
            cluster_ips: vec![Ipv4Addr::new(10, 96, 0, 20)],
            port: 80,
            node_port: Some(30080),
            external_ips: vec![Ipv4Addr::new(127, 240, 0, 1)],
            affinity: None,
            internal_local: false,
            external_local: true,
            health_check_node_port: Some(32000),
        };
        let endpoints = [
            endpoint(3, true, false, "n1"),
            endpoint(9, true, false, "n2"),
        ];
        let rules = port_rules(&port, &endpoints, &node());
        assert_eq!(rules.virtuals.len(), 3);
        let at = |ip: [u8; 4], port| {
            &rules.virtuals[&Address {
                ip: ip.into(),
                port,
                protocol: Protocol::Tcp,
            }]
        };
        let cluster = at([10, 96, 0, 20], 80);
        assert_eq!(cluster.backends.len(), 2);
        assert!(!cluster.masquerade);
        let node_port = at([172, 18, 0, 2], 30080);
        assert_eq!(node_port.traffic, Traffic::External);
        assert_eq!(
            node_port.backends.len(),
            1,
            "Local: the node's own endpoint only"
        );
        assert!(!node_port.masquerade, "Local keeps the client's address");
        assert_eq!(at([127, 240, 0, 1], 80).backends, node_port.backends);
        assert_eq!(rules.health_check, Some((32000, 1)));
        let cluster_policy = ServicePort {
            external_local: false,
            ..port
        };
        let rules = port_rules(&cluster_policy, &endpoints, &node());
        let node_port = &rules.virtuals[&Address {
            ip: [172, 18, 0, 2].into(),
            port: 30080,
            protocol: Protocol::Tcp,
        }];
        assert!(node_port.masquerade && node_port.backends.len() == 2);
        assert_eq!(rules.health_check, None);
        let none = port_rules(&cluster_policy, &[], &node());
        assert!(none.virtuals.values().all(|v| v.backends.is_empty()));
    }

    #[test]
    fn a_slice_gives_its_service_and_endpoints_by_port() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.1.3"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.244.2.3"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.3.3"]}
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
        }))
        .unwrap();
        let (service, ports) = slice_endpoints(&slice).unwrap();
        assert_eq!(service, ("default".to_owned(), "web".to_owned()));
        let http = &ports[&("http".to_owned(), Protocol::Tcp)];
        assert_eq!(http.len(), 3);
        assert!(http[0].ready && http[2].ready);
        assert!(!http[1].ready && http[1].serving && http[1].terminating);
        assert_eq!(http[0].node.as_deref(), Some("n1"));
    }
}
