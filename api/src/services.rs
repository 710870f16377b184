//! What a Service holds of the cluster's shared ranges — a ClusterIP from
//! the service CIDR, node ports from the node-port range — and how a create
//! or an update settles them, as upstream's Service REST storage does
//! (`patchAllocatedValues`, `dropTypeDependentFields`, the allocators'
//! static/dynamic bands). Pure: the apiserver's allocator reserves what
//! [`settle`] asks for in the store and calls it again.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

/// A range of IPv4 addresses given as a CIDR; the network and broadcast
/// addresses are never handed out, as upstream's allocator skips them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: u32,
    prefix: u8,
}

impl IpRange {
    /// Parses `10.96.0.0/12`. Only IPv4 ranges of 2 to 2^24 usable
    /// addresses are taken (upstream refuses more than a /12 for IPv4's
    /// bitmap allocator too... a /8 is still accepted here).
    pub fn parse(cidr: &str) -> Result<IpRange, String> {
        let (ip, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("{cidr:?} is not a CIDR such as 10.96.0.0/12"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{cidr:?}: only IPv4 service ranges are supported"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("{cidr:?}: the prefix length must be 8 to 30"))?;
        let mask = u32::MAX << (32 - prefix);
        Ok(IpRange {
            network: u32::from(ip) & mask,
            prefix,
        })
    }

    /// How many addresses can be handed out.
    pub fn size(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The address at `offset` (0 is the first usable address).
    pub fn ip(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1 + offset)
    }

    /// The offset of `ip`, if it can be handed out.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(ip).checked_sub(self.network + 1)?;
        (offset < self.size()).then_some(offset)
    }

    /// Dynamic allocations start here: the band below is kept for explicit
    /// addresses first (upstream's ServiceIPStaticSubrange:
    /// min(max(16, size/16), 256)).
    pub fn dynamic_start(&self) -> u32 {
        (self.size() / 16).clamp(16, 256).min(self.size() / 2)
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

/// A range of node ports, such as `30000-32767`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// Parses `30000-32767` (or one port).
    pub fn parse(text: &str) -> Result<PortRange, String> {
        let bad = || format!("{text:?} is not a port range such as 30000-32767");
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let first: u16 = first.trim().parse().map_err(|_| bad())?;
        let last: u16 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }

    /// How many ports it holds.
    pub fn size(&self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    /// The port at `offset`.
    pub fn port(&self, offset: u32) -> u16 {
        self.first + offset as u16
    }

    /// The offset of `port`, if it is in the range.
    pub fn offset(&self, port: u16) -> Option<u32> {
        (self.first..=self.last)
            .contains(&port)
            .then(|| u32::from(port - self.first))
    }

    /// Dynamic allocations start here (upstream's
    /// ServiceNodePortStaticSubrange: min(max(16, size/32), 128)).
    pub fn dynamic_start(&self) -> u32 {
        (self.size() / 32).clamp(16, 128).min(self.size() / 2)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// A free offset among `size`, found from `start` (a random point) in the
/// dynamic band `[band, size)` first, then in the static band below it.
pub fn pick(size: u32, band: u32, start: u32, taken: impl Fn(u32) -> bool) -> Option<u32> {
    let scan = |low: u32, high: u32| {
        let width = high.checked_sub(low).filter(|w| *w > 0)?;
        (0..width)
            .map(|i| low + (start % width + i) % width)
            .find(|&o| !taken(o))
    };
    scan(band, size).or_else(|| scan(0, band))
}

/// What a Service holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Its ClusterIP (none for headless and ExternalName Services).
    pub ip: Option<Ipv4Addr>,
    /// Its node ports (one per number: a TCP and a UDP port may share one).
    pub ports: BTreeSet<u16>,
}

impl Held {
    /// What `service` holds, as stored.
    pub fn of(service: &Value) -> Held {
        let spec = &service["spec"];
        Held {
            ip: spec["clusterIP"].as_str().and_then(|ip| ip.parse().ok()),
            ports: node_ports(spec)
                .into_iter()
                .chain([health_port(spec)])
                .flatten()
                .collect(),
        }
    }

    /// What `self` holds that `other` does not.
    pub fn minus(&self, other: &Held) -> Held {
        Held {
            ip: self.ip.filter(|ip| other.ip != Some(*ip)),
            ports: self.ports.difference(&other.ports).copied().collect(),
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ip.is_none() && self.ports.is_empty()
    }
}

/// What a create or update still needs reserved before [`settle`] can
/// finish: specific values (asked for by the user) and any values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// A ClusterIP: `Some(ip)` that one, `None` any.
    pub ip: Option<Option<Ipv4Addr>>,
    /// Node ports: (the field that takes it — `spec.ports[0].nodePort`,
    /// `spec.healthCheckNodePort` — and `Some(port)` that one or `None`
    /// any).
    pub ports: Vec<(String, Option<u16>)>,
}

/// Why a Service's addresses are refused: (field, message) as a 422 cause.
pub type Invalid = (String, String);

/// The outcome of [`settle`].
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// Every value is in place.
    Done,
    /// These must be reserved first.
    Needs(Needs),
    /// The spec asks for what may not be.
    Invalid(Vec<Invalid>),
}

/// A list of strings as upstream's messages print it: `[]string{"a"}`.
fn go_strings(list: &Value) -> String {
    let items: Vec<String> = list
        .as_array()
        .map(|l| {
            l.iter()
                .map(|v| format!("{:?}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    format!("[]string{{{}}}", items.join(", "))
}

fn needs_cluster_ip(spec: &Value) -> bool {
    spec["type"].as_str().unwrap_or("ClusterIP") != "ExternalName"
}

/// Whether `spec`'s ports may hold node ports: a NodePort or LoadBalancer
/// Service (one with `allocateLoadBalancerNodePorts: false` still holds
/// the ones it asks for).
fn holds_node_ports(spec: &Value) -> bool {
    matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
}

/// Whether ports that ask for no node port are given one.
fn allocates_node_ports(spec: &Value) -> bool {
    holds_node_ports(spec)
        && !(spec["type"] == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"] == false)
}

/// Whether `spec` needs a health-check node port: a LoadBalancer that
/// keeps traffic on the node it arrives at (`externalTrafficPolicy:
/// Local`), whose load balancer must ask each node whether it has
/// endpoints.
pub(crate) fn needs_health_port(spec: &Value) -> bool {
    spec["type"] == "LoadBalancer" && spec["externalTrafficPolicy"] == "Local"
}

fn health_port(spec: &Value) -> Option<u16> {
    spec["healthCheckNodePort"]
        .as_u64()
        .filter(|n| *n > 0)
        .and_then(|n| u16::try_from(n).ok())
}

/// The node port of each port of `spec`, as written (0 and absent: None).
fn node_ports(spec: &Value) -> Vec<Option<u16>> {
    ports(spec)
        .iter()
        .map(|p| {
            p["nodePort"]
                .as_u64()
                .filter(|n| *n > 0)
                .and_then(|n| u16::try_from(n).ok())
        })
        .collect()
}

fn ports(spec: &Value) -> &[Value] {
    spec["ports"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn cluster_ip(spec: &Value) -> &str {
    match spec["clusterIP"].as_str() {
        Some(ip) if !ip.is_empty() => ip,
        _ => spec["clusterIPs"][0].as_str().unwrap_or_default(),
    }
}

/// Upstream's update rules before allocation: a type that no longer needs
/// a ClusterIP or node ports drops the ones the client left unchanged,
/// and what the client omitted but still needs is carried over from the
/// stored object (so a PUT or an apply without `clusterIP` keeps it).
fn carry_over(current: &Value, next: &mut Value) {
    let (old, new) = (&current["spec"], &mut next["spec"]);
    if !new.is_object() {
        return;
    }
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if cluster_ip(new) == cluster_ip(old) {
            for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                new.as_object_mut().map(|s| s.remove(field));
            }
        }
    } else if needs_cluster_ip(new) && cluster_ip(new).is_empty() && !cluster_ip(old).is_empty() {
        // `clusterIP: ""` and `clusterIPs: []` (as charts render them)
        // are as good as absent.
        let empty = |v: &Value| v.is_null() || v == "" || v.as_array().is_some_and(Vec::is_empty);
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if empty(&new[field]) {
                new[field] = old[field].clone();
            }
        }
    }
    // A client that changed only `clusterIP` means `clusterIPs` too.
    if new["clusterIPs"] == old["clusterIPs"]
        && !new["clusterIP"].is_null()
        && new["clusterIP"] != old["clusterIP"]
    {
        new["clusterIPs"] = json!([new["clusterIP"]]);
    }
    if !holds_node_ports(new) {
        new.as_object_mut()
            .map(|s| s.remove("externalTrafficPolicy"));
    }
    if needs_health_port(old) && !needs_health_port(new) {
        if health_port(new) == health_port(old) {
            new.as_object_mut().map(|s| s.remove("healthCheckNodePort"));
        }
    } else if needs_health_port(new) && health_port(new).is_none() {
        if let Some(port) = health_port(old) {
            new["healthCheckNodePort"] = json!(port);
        }
    }
    // Node ports: dropped when the new type holds none and the client left
    // them all unchanged; carried over by port name where the client gave
    // none and no other port uses the old value (upstream's rules).
    let (old_holds, new_holds) = (holds_node_ports(old), holds_node_ports(new));
    let old_ports: Vec<(Value, Option<u16>)> = ports(old)
        .iter()
        .zip(node_ports(old))
        .map(|(p, n)| (p["name"].clone(), n))
        .collect();
    if old_holds && !new_holds {
        if node_ports(new) == node_ports(old) {
            for port in new["ports"].as_array_mut().into_iter().flatten() {
                port.as_object_mut().map(|p| p.remove("nodePort"));
            }
        }
    } else if old_holds && new_holds {
        let mut given: BTreeSet<u16> = node_ports(new).into_iter().flatten().collect();
        for port in new["ports"].as_array_mut().into_iter().flatten() {
            if !port.is_object() || port["nodePort"].as_u64().unwrap_or(0) > 0 {
                continue;
            }
            let had = old_ports
                .iter()
                .find(|(name, _)| *name == port["name"])
                .and_then(|(_, n)| *n)
                .filter(|n| !given.contains(n));
            if let Some(had) = had {
                port["nodePort"] = json!(had);
                given.insert(had);
            }
        }
    }
}

/// Settles a Service's ClusterIP and node ports for a create (`current`
/// None) or an update: checks what the spec asks for, fills in what it
/// leaves to the server from `reserved` (what the allocator holds for this
/// request), and answers what is still to be reserved. Values `current`
/// already holds need no reservation.
pub fn settle(current: Option<&Value>, next: &mut Value, reserved: &Held) -> Settled {
    if !next["spec"].is_object() {
        // Nothing to settle: validation refuses the spec.
        return Settled::Done;
    }
    if let Some(current) = current {
        carry_over(current, next);
    }
    let held = current.map(Held::of).unwrap_or_default();
    let spec = &next["spec"];
    let mut invalid: Vec<Invalid> = Vec::new();
    let mut needs = Needs::default();
    let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_owned();
    let asked = cluster_ip(spec).to_owned();
    if let (Some(a), Some(b)) = (spec["clusterIP"].as_str(), spec["clusterIPs"][0].as_str()) {
        if !a.is_empty() && a != b {
            invalid.push((
                "spec.clusterIPs".into(),
                format!(
                    "Invalid value: {}: must match the spec.clusterIP {a:?}",
                    go_strings(&spec["clusterIPs"])
                ),
            ));
        }
    }
    // This cluster's service range is IPv4 alone.
    for (i, family) in spec["ipFamilies"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if family != "IPv4" {
            invalid.push((
                format!("spec.ipFamilies[{i}]"),
                format!("Invalid value: {family}: not configured on this cluster"),
            ));
        }
    }
    if spec["ipFamilyPolicy"] == "RequireDualStack" {
        invalid.push((
            "spec.ipFamilyPolicy".into(),
            "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services".into(),
        ));
    }
    let mut ip: Option<Ipv4Addr> = None;
    if !needs_cluster_ip(spec) {
        if !asked.is_empty() {
            invalid.push((
                "spec.clusterIPs".into(),
                "Forbidden: may not be set for ExternalName services".into(),
            ));
        }
    } else if asked == "None" {
        if kind == "NodePort" || kind == "LoadBalancer" {
            invalid.push((
                "spec.clusterIPs[0]".into(),
                format!("Invalid value: \"None\": may not be set to 'None' for {kind} services"),
            ));
        }
    } else if asked.is_empty() {
        match held.ip.or(reserved.ip) {
            Some(found) => ip = Some(found),
            None => needs.ip = Some(None),
        }
    } else {
        match asked.parse::<Ipv4Addr>() {
            Err(_) => invalid.push((
                "spec.clusterIPs[0]".into(),
                format!("Invalid value: \"{asked}\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
            )),
            Ok(found) if held.ip == Some(found) || reserved.ip == Some(found) => ip = Some(found),
            Ok(found) => needs.ip = Some(Some(found)),
        }
    }
    if let Some(old) = current
        .map(|c| &c["spec"])
        .filter(|old| needs_cluster_ip(old))
    {
        let was = cluster_ip(old);
        if needs_cluster_ip(spec) && !was.is_empty() && asked != was {
            invalid.push((
                "spec.clusterIPs[0]".into(),
                format!("Invalid value: []string{{{asked:?}}}: may not change once set"),
            ));
        }
    }
    // Node ports (and a health-check port): (field, value, whether the
    // server picks one when none is asked for). The asked ones first, then
    // any others from what is reserved.
    let mut slots: Vec<(String, Option<u16>, bool)> = Vec::new();
    let protocols: Vec<&Value> = ports(spec).iter().map(|p| &p["protocol"]).collect();
    if holds_node_ports(spec) {
        let dynamic = allocates_node_ports(spec);
        let asked = node_ports(spec);
        for (i, port) in asked.iter().enumerate() {
            // One number may serve a TCP and a UDP port, never two of one.
            let twice = asked[..i].iter().zip(&protocols).any(|(other, protocol)| {
                other.is_some() && other == port && *protocol == protocols[i]
            });
            if twice {
                invalid.push((
                    format!("spec.ports[{i}].nodePort"),
                    format!("Duplicate value: {}", port.unwrap_or_default()),
                ));
            }
            slots.push((format!("spec.ports[{i}].nodePort"), *port, dynamic));
        }
    } else if kind == "ClusterIP" || kind == "ExternalName" {
        for (i, port) in node_ports(spec).into_iter().enumerate() {
            if port.is_some() {
                invalid.push((
                    format!("spec.ports[{i}].nodePort"),
                    format!("Forbidden: may not be used when `type` is '{kind}'"),
                ));
            }
        }
    }
    let health = health_port(spec);
    if needs_health_port(spec) {
        if let Some(port) = health.filter(|p| node_ports(spec).contains(&Some(*p))) {
            invalid.push((
                "spec.healthCheckNodePort".into(),
                format!("Invalid value: {port}: failed to allocate requested HealthCheck NodePort {port}: provided port is already allocated"),
            ));
        }
        let was = current
            .map(|c| &c["spec"])
            .filter(|old| needs_health_port(old))
            .and_then(health_port);
        if was.is_some() && health != was {
            invalid.push((
                "spec.healthCheckNodePort".into(),
                "Forbidden: field is immutable".into(),
            ));
        }
        slots.push(("spec.healthCheckNodePort".into(), health, true));
    } else if let Some(port) = health {
        invalid.push((
            "spec.healthCheckNodePort".into(),
            format!("Invalid value: {port}: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"),
        ));
    }
    let asked: BTreeSet<u16> = slots.iter().filter_map(|(_, port, _)| *port).collect();
    for (field, port, _) in &slots {
        if let Some(port) = port {
            if !held.ports.contains(port) && !reserved.ports.contains(port) {
                needs.ports.push((field.clone(), Some(*port)));
            }
        }
    }
    let mut spare = reserved.ports.difference(&asked).copied();
    for (field, port, dynamic) in &mut slots {
        if port.is_none() && *dynamic {
            match spare.next() {
                Some(found) => *port = Some(found),
                None => needs.ports.push((field.clone(), None)),
            }
        }
    }
    if !invalid.is_empty() {
        return Settled::Invalid(invalid);
    }
    if needs != Needs::default() {
        return Settled::Needs(needs);
    }
    let spec = &mut next["spec"];
    if needs_cluster_ip(spec) {
        let value = ip.map(|ip| ip.to_string()).unwrap_or_else(|| "None".into());
        spec["clusterIP"] = json!(value);
        spec["clusterIPs"] = json!([value]);
        if spec["ipFamilies"].is_null() {
            spec["ipFamilies"] = json!(["IPv4"]);
        }
        if spec["ipFamilyPolicy"].is_null() {
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    let mut slots = slots.into_iter().map(|(_, port, _)| port);
    if holds_node_ports(spec) {
        if let Some(list) = spec["ports"].as_array_mut() {
            for (port, value) in list.iter_mut().zip(&mut slots) {
                if let (Some(port), Some(value)) = (port.as_object_mut(), value) {
                    port.insert("nodePort".into(), json!(value));
                }
            }
        }
    }
    if needs_health_port(spec) {
        spec["healthCheckNodePort"] = json!(slots.next().flatten());
    }
    Settled::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": spec})
    }

    fn held(ip: Option<&str>, ports: &[u16]) -> Held {
        Held {
            ip: ip.map(|ip| ip.parse().unwrap()),
            ports: ports.iter().copied().collect(),
        }
    }

    #[test]
    fn ranges_skip_network_and_broadcast_and_keep_a_static_band() {
        let range = IpRange::parse("10.96.0.0/12").unwrap();
        assert_eq!(range.size(), (1 << 20) - 2);
        assert_eq!(range.ip(0), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(range.offset(Ipv4Addr::new(10, 96, 0, 10)), Some(9));
        assert_eq!(range.offset(Ipv4Addr::new(10, 96, 0, 0)), None);
        assert_eq!(range.offset(Ipv4Addr::new(10, 111, 255, 255)), None);
        assert_eq!(range.offset(Ipv4Addr::new(10, 112, 0, 1)), None);
        assert_eq!(range.dynamic_start(), 256);
        assert_eq!(range.to_string(), "10.96.0.0/12");
        assert_eq!(
            IpRange::parse("10.0.0.7/24").unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert!(IpRange::parse("fd00::/108").is_err());
        assert!(IpRange::parse("10.0.0.0").is_err());
        let ports = PortRange::parse("30000-32767").unwrap();
        assert_eq!((ports.size(), ports.dynamic_start()), (2768, 86));
        assert_eq!(ports.offset(30080), Some(80));
        assert_eq!(ports.offset(80), None);
        assert_eq!(ports.port(80), 30080);
        assert!(PortRange::parse("32767-30000").is_err());
    }

    #[test]
    fn picks_in_the_dynamic_band_first_then_below_and_none_when_full() {
        assert_eq!(pick(100, 20, 5, |_| false), Some(25));
        assert_eq!(pick(100, 20, 79, |o| o < 99), Some(99));
        assert_eq!(pick(100, 20, 0, |o| !(7..20).contains(&o)), Some(7));
        assert_eq!(pick(100, 20, 0, |_| true), None);
    }

    #[test]
    fn a_new_service_asks_for_an_ip_then_takes_the_reserved_one() {
        let mut web = svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}));
        let needs = settle(None, &mut web, &Held::default());
        assert_eq!(
            needs,
            Settled::Needs(Needs {
                ip: Some(None),
                ports: vec![]
            })
        );
        assert_eq!(
            settle(None, &mut web, &held(Some("10.96.3.4"), &[])),
            Settled::Done
        );
        assert_eq!(web["spec"]["clusterIP"], "10.96.3.4");
        assert_eq!(web["spec"]["clusterIPs"], json!(["10.96.3.4"]));
        assert_eq!(web["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(web["spec"]["ipFamilyPolicy"], "SingleStack");
    }

    #[test]
    fn node_ports_asked_for_and_left_to_the_server() {
        let spec = json!({"type": "NodePort", "ports": [
            {"name": "a", "port": 80, "protocol": "TCP", "nodePort": 30080},
            {"name": "b", "port": 81, "protocol": "TCP"},
            {"name": "c", "port": 80, "protocol": "UDP", "nodePort": 30080},
        ]});
        let mut web = svc(spec);
        let Settled::Needs(needs) = settle(None, &mut web, &Held::default()) else {
            panic!("needs")
        };
        assert_eq!(needs.ip, Some(None));
        let field = |i: usize| format!("spec.ports[{i}].nodePort");
        assert_eq!(
            needs.ports,
            vec![
                (field(0), Some(30080)),
                (field(2), Some(30080)),
                (field(1), None)
            ]
        );
        let reserved = held(Some("10.96.0.20"), &[30080, 31000]);
        assert_eq!(settle(None, &mut web, &reserved), Settled::Done);
        let ports: Vec<&Value> = web["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["nodePort"])
            .collect();
        assert_eq!(ports, [&json!(30080), &json!(31000), &json!(30080)]);
        assert_eq!(Held::of(&web), reserved);
    }

    #[test]
    fn headless_external_name_and_bad_addresses() {
        let mut headless = svc(json!({"clusterIP": "None", "selector": {"a": "b"}}));
        assert_eq!(settle(None, &mut headless, &Held::default()), Settled::Done);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert!(Held::of(&headless).is_empty());
        let mut external = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert_eq!(settle(None, &mut external, &Held::default()), Settled::Done);
        assert!(external["spec"]["clusterIP"].is_null());
        for (spec, field) in [
            (json!({"clusterIP": "banana"}), "spec.clusterIPs[0]"),
            (
                json!({"type": "NodePort", "clusterIP": "None"}),
                "spec.clusterIPs[0]",
            ),
            (
                json!({"type": "ExternalName", "clusterIP": "10.96.0.9"}),
                "spec.clusterIPs",
            ),
            (
                json!({"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.8"]}),
                "spec.clusterIPs",
            ),
            (
                json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30001}]}),
                "spec.ports[0].nodePort",
            ),
        ] {
            let Settled::Invalid(causes) = settle(None, &mut svc(spec.clone()), &Held::default())
            else {
                panic!("{spec} is invalid")
            };
            assert_eq!(causes[0].0, field, "{spec}");
        }
    }

    #[test]
    fn updates_keep_what_is_held_and_refuse_a_changed_ip() {
        let stored = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}),
        );
        // An apply that omits both keeps both, needing nothing.
        let mut next = svc(json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}));
        assert_eq!(
            settle(Some(&stored), &mut next, &Held::default()),
            Settled::Done
        );
        assert_eq!(Held::of(&next), Held::of(&stored));
        // A new port needs one more node port.
        let mut more = svc(
            json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}, {"port": 90, "protocol": "TCP"}]}),
        );
        assert_eq!(
            settle(Some(&stored), &mut more, &Held::default()),
            Settled::Needs(Needs {
                ip: None,
                ports: vec![("spec.ports[1].nodePort".into(), None)]
            })
        );
        // Back to ClusterIP: the node ports go (the IP stays).
        let mut back = stored.clone();
        back["spec"]["type"] = json!("ClusterIP");
        assert_eq!(
            settle(Some(&stored), &mut back, &Held::default()),
            Settled::Done
        );
        assert_eq!(
            Held::of(&stored).minus(&Held::of(&back)),
            held(None, &[30080])
        );
        // To ExternalName: the IP goes too.
        let mut external = back.clone();
        external["spec"]["type"] = json!("ExternalName");
        external["spec"]["externalName"] = json!("example.com");
        assert_eq!(
            settle(Some(&back), &mut external, &Held::default()),
            Settled::Done
        );
        assert!(Held::of(&external).is_empty());
        // The IP may not change.
        let mut moved = stored.clone();
        moved["spec"]["clusterIP"] = json!("10.96.0.21");
        moved["spec"]["clusterIPs"] = json!(["10.96.0.21"]);
        let Settled::Invalid(causes) =
            settle(Some(&stored), &mut moved, &held(Some("10.96.0.21"), &[]))
        else {
            panic!("immutable")
        };
        assert!(
            causes[0].1.contains("may not change once set"),
            "{causes:?}"
        );
        // A patch of `clusterIP` alone is the same change, refused once.
        let mut patched = stored.clone();
        patched["spec"]["clusterIP"] = json!("10.96.0.21");
        let Settled::Invalid(causes) = settle(Some(&stored), &mut patched, &Held::default()) else {
            panic!("immutable")
        };
        assert_eq!(
            causes,
            [(
                "spec.clusterIPs[0]".to_owned(),
                "Invalid value: []string{\"10.96.0.21\"}: may not change once set".to_owned()
            )]
        );
    }

    #[test]
    fn a_local_load_balancer_holds_a_health_check_port_while_it_is_local() {
        let spec = json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80, "protocol": "TCP"}]});
        let mut lb = svc(spec);
        let Settled::Needs(needs) = settle(None, &mut lb, &Held::default()) else {
            panic!("needs")
        };
        assert_eq!(
            needs.ports,
            [
                ("spec.ports[0].nodePort".to_owned(), None),
                ("spec.healthCheckNodePort".to_owned(), None)
            ]
        );
        let reserved = held(Some("10.96.0.30"), &[30100, 30101]);
        assert_eq!(settle(None, &mut lb, &reserved), Settled::Done);
        assert_eq!(lb["spec"]["ports"][0]["nodePort"], 30100);
        assert_eq!(lb["spec"]["healthCheckNodePort"], 30101);
        assert_eq!(Held::of(&lb), reserved);
        // Back to Cluster: the health-check port goes, the node port stays.
        let mut cluster = lb.clone();
        cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
        assert_eq!(
            settle(Some(&lb), &mut cluster, &Held::default()),
            Settled::Done
        );
        assert!(cluster["spec"]["healthCheckNodePort"].is_null());
        assert_eq!(
            Held::of(&lb).minus(&Held::of(&cluster)),
            held(None, &[30101])
        );
        // Asked for where it has no use: refused.
        let mut wrong =
            svc(json!({"type": "NodePort", "healthCheckNodePort": 30200, "ports": [{"port": 80}]}));
        let Settled::Invalid(causes) = settle(None, &mut wrong, &Held::default()) else {
            panic!("invalid")
        };
        assert_eq!(causes[0].0, "spec.healthCheckNodePort");
    }

    #[test]
    fn a_load_balancer_without_node_ports_still_holds_the_ones_it_asks_for() {
        let spec = json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"name": "a", "port": 80, "protocol": "TCP", "nodePort": 30500},
                      {"name": "b", "port": 81, "protocol": "TCP"}]});
        let mut lb = svc(spec);
        let Settled::Needs(needs) = settle(None, &mut lb, &held(Some("10.96.0.40"), &[])) else {
            panic!("needs")
        };
        assert_eq!(
            needs.ports,
            [("spec.ports[0].nodePort".to_owned(), Some(30500))]
        );
        assert_eq!(
            settle(None, &mut lb, &held(Some("10.96.0.40"), &[30500])),
            Settled::Done
        );
        assert!(
            lb["spec"]["ports"][1].get("nodePort").is_none(),
            "none given"
        );
        assert_eq!(Held::of(&lb).ports, [30500].into());
    }

    #[test]
    fn node_ports_are_not_repeated_within_a_service_but_tcp_and_udp_may_share() {
        let two_tcp = json!({"type": "NodePort", "ports": [
            {"name": "a", "port": 80, "protocol": "TCP", "nodePort": 30600},
            {"name": "b", "port": 81, "protocol": "TCP", "nodePort": 30600}]});
        let Settled::Invalid(causes) = settle(None, &mut svc(two_tcp), &Held::default()) else {
            panic!("duplicate")
        };
        assert_eq!(
            causes,
            [(
                "spec.ports[1].nodePort".to_owned(),
                "Duplicate value: 30600".to_owned()
            )]
        );
        let health = json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30700,
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30700}]});
        let Settled::Invalid(causes) = settle(None, &mut svc(health), &Held::default()) else {
            panic!("shared with a node port")
        };
        assert_eq!(causes[0].0, "spec.healthCheckNodePort");
    }

    #[test]
    fn updates_treat_empty_addresses_as_absent_and_keep_the_health_port() {
        let stored = svc(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "clusterIP": "10.96.0.50", "clusterIPs": ["10.96.0.50"],
            "ports": [{"name": "a", "port": 80, "protocol": "TCP", "nodePort": 31000}]}),
        );
        // As a chart renders it: `clusterIP: ""`, no clusterIPs.
        let mut chart = svc(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "clusterIP": "",
            "ports": [{"name": "a", "port": 80, "protocol": "TCP"}]}),
        );
        assert_eq!(
            settle(Some(&stored), &mut chart, &Held::default()),
            Settled::Done
        );
        assert_eq!(Held::of(&chart), Held::of(&stored));
        // The health-check port may not move while it is needed.
        let mut moved = stored.clone();
        moved["spec"]["healthCheckNodePort"] = json!(32001);
        let Settled::Invalid(causes) = settle(Some(&stored), &mut moved, &held(None, &[32001]))
        else {
            panic!("immutable")
        };
        assert_eq!(
            causes[0],
            (
                "spec.healthCheckNodePort".to_owned(),
                "Forbidden: field is immutable".to_owned()
            )
        );
    }

    #[test]
    fn node_ports_carry_over_by_port_name_and_new_ports_get_new_values() {
        let stored = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.0.60", "ports": [
            {"name": "a", "port": 80, "protocol": "TCP", "nodePort": 31100},
            {"name": "b", "port": 81, "protocol": "TCP", "nodePort": 31101}]}),
        );
        let mut next = svc(json!({"type": "NodePort", "ports": [
            {"name": "a", "port": 8080, "protocol": "TCP"},
            {"name": "c", "port": 82, "protocol": "TCP"}]}));
        let Settled::Needs(needs) = settle(Some(&stored), &mut next, &Held::default()) else {
            panic!("c needs a port of its own")
        };
        assert_eq!(needs.ports, [("spec.ports[1].nodePort".to_owned(), None)]);
        assert_eq!(
            settle(Some(&stored), &mut next, &held(None, &[31500])),
            Settled::Done
        );
        assert_eq!(
            next["spec"]["ports"][0]["nodePort"], 31100,
            "a keeps its port"
        );
        assert_eq!(next["spec"]["ports"][1]["nodePort"], 31500);
        assert_eq!(
            Held::of(&stored).minus(&Held::of(&next)),
            held(None, &[31101]),
            "b's is released"
        );
    }

    #[test]
    fn ipv6_and_required_dual_stack_are_refused_on_this_ipv4_cluster() {
        let spec = json!({"ipFamilies": ["IPv6"], "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]});
        let Settled::Invalid(causes) = settle(None, &mut svc(spec), &Held::default()) else {
            panic!("refused")
        };
        let fields: Vec<&str> = causes.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(fields, ["spec.ipFamilies[0]", "spec.ipFamilyPolicy"]);
        assert_eq!(
            causes[0].1,
            "Invalid value: \"IPv6\": not configured on this cluster"
        );
        // PreferDualStack is granted as one IPv4 family, as upstream does.
        let mut prefer = svc(json!({"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 80}]}));
        assert_eq!(
            settle(None, &mut prefer, &held(Some("10.96.0.70"), &[])),
            Settled::Done
        );
        assert_eq!(prefer["spec"]["ipFamilies"], json!(["IPv4"]));
    }
}
