//! Change tracking, as kube-proxy's `servicechangetracker.go` and
//! `endpointschangetracker.go`: an event handler only records, per key,
//! what the proxy had before the first unsynced change and what it has
//! now; a change that cancels out (an update back, a create then delete)
//! leaves nothing to do. A sync takes the pending changes, applies them to
//! the [`State`] and recomputes the rules of the Services they touch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::{
    port_rules, service_ports, slice_endpoints, Endpoint, EndpointPort, Node, PortName, PortRules,
    Protocol, ServiceKey, ServicePort,
};

/// Pending changes by key: (as before the first, as now).
#[derive(Debug)]
pub struct Tracker<K, V> {
    pending: HashMap<K, (Option<V>, Option<V>)>,
}

impl<K, V> Default for Tracker<K, V> {
    fn default() -> Self {
        Tracker {
            pending: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash, V: PartialEq> Tracker<K, V> {
    /// Records that `key` went from `previous` to `current`; drops the
    /// entry when the two ends agree again.
    pub fn record(&mut self, key: K, previous: Option<V>, current: Option<V>) {
        let before = match self.pending.remove(&key) {
            Some((before, _)) => before,
            None => previous,
        };
        if before != current {
            self.pending.insert(key, (before, current));
        }
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The pending changes' keys and current values, leaving none.
    pub fn take(&mut self) -> Vec<(K, Option<V>)> {
        self.pending
            .drain()
            .map(|(key, (_, current))| (key, current))
            .collect()
    }
}

/// The slice key: namespace and name.
pub type SliceKey = (String, String);

/// What a slice says: its Service and endpoints by port.
pub type SliceView = (ServiceKey, BTreeMap<EndpointPort, Vec<Endpoint>>);

/// What the proxy knows of Services and slices, and the rules that follow
/// on one node.
#[derive(Debug, Default)]
pub struct State {
    /// Pending Service changes.
    pub services: Tracker<ServiceKey, Vec<ServicePort>>,
    /// Pending slice changes.
    pub slices: Tracker<SliceKey, SliceView>,
    ports: HashMap<ServiceKey, Vec<ServicePort>>,
    slice_views: HashMap<SliceKey, SliceView>,
    slices_of: HashMap<ServiceKey, BTreeSet<SliceKey>>,
    /// The rules of every Service port.
    pub rules: BTreeMap<PortName, PortRules>,
}

impl State {
    /// Records a Service's change (None: absent).
    pub fn record_service(&mut self, old: Option<&Service>, new: Option<&Service>) {
        let Some(key) = new.or(old).and_then(service_key) else {
            return;
        };
        self.services
            .record(key, old.map(service_ports), new.map(service_ports));
    }

    /// Records a slice's change (None: absent).
    pub fn record_slice(&mut self, old: Option<&EndpointSlice>, new: Option<&EndpointSlice>) {
        let Some(object) = new.or(old) else { return };
        let (Some(namespace), Some(name)) = (
            object.metadata.namespace.clone(),
            object.metadata.name.clone(),
        ) else {
            return;
        };
        self.slices.record(
            (namespace, name),
            old.and_then(slice_endpoints),
            new.and_then(slice_endpoints),
        );
    }

    /// Whether a change waits for a sync.
    pub fn changed(&self) -> bool {
        !self.services.is_empty() || !self.slices.is_empty()
    }

    /// Applies the pending changes and recomputes the rules of the
    /// Services they touch on `node`; answers those Services.
    pub fn apply(&mut self, node: &Node) -> BTreeSet<ServiceKey> {
        let mut touched = BTreeSet::new();
        for (key, ports) in self.services.take() {
            match ports {
                Some(ports) => self.ports.insert(key.clone(), ports),
                None => self.ports.remove(&key),
            };
            touched.insert(key);
        }
        for (key, view) in self.slices.take() {
            if let Some((service, _)) = self.slice_views.remove(&key) {
                if let Some(set) = self.slices_of.get_mut(&service) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.slices_of.remove(&service);
                    }
                }
                touched.insert(service);
            }
            if let Some(view) = view {
                self.slices_of
                    .entry(view.0.clone())
                    .or_default()
                    .insert(key.clone());
                touched.insert(view.0.clone());
                self.slice_views.insert(key, view);
            }
        }
        for service in &touched {
            self.recompute(service, node);
        }
        touched
    }

    /// Recomputes every Service's rules on `node` (a periodic resync, or
    /// a node whose addresses changed).
    pub fn recompute_all(&mut self, node: &Node) {
        self.rules.clear();
        let services: Vec<ServiceKey> = self.ports.keys().cloned().collect();
        for service in &services {
            self.recompute(service, node);
        }
    }

    fn recompute(&mut self, service: &ServiceKey, node: &Node) {
        let first = PortName {
            service: service.clone(),
            port: String::new(),
            protocol: Protocol::Tcp,
        };
        let stale: Vec<PortName> = self
            .rules
            .range(first..)
            .take_while(|(name, _)| &name.service == service)
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            self.rules.remove(&name);
        }
        let Some(ports) = self.ports.get(service) else {
            return;
        };
        let slices = self.slices_of.get(service);
        for port in ports {
            let key = (port.name.port.clone(), port.name.protocol);
            let mut endpoints: Vec<Endpoint> = slices
                .into_iter()
                .flatten()
                .filter_map(|s| self.slice_views.get(s))
                .filter_map(|(_, by_port)| by_port.get(&key))
                .flatten()
                .cloned()
                .collect();
            endpoints.sort();
            self.rules
                .insert(port.name.clone(), port_rules(port, &endpoints, node));
        }
    }
}

fn service_key(service: &Service) -> Option<ServiceKey> {
    Some((
        service.metadata.namespace.clone()?,
        service.metadata.name.clone()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::net::Ipv4Addr;

    fn service(ip: &str) -> Service {
        serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]}}))
        .unwrap()
    }

    fn slice(name: &str, ips: &[&str]) -> EndpointSlice {
        let endpoints: Vec<_> = ips
            .iter()
            .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name, "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}))
        .unwrap()
    }

    fn node() -> Node {
        Node {
            name: "n1".into(),
            addresses: vec![Ipv4Addr::new(172, 18, 0, 2)],
        }
    }

    #[test]
    fn changes_that_cancel_out_leave_nothing_pending() {
        let mut tracker: Tracker<&str, u32> = Tracker::default();
        tracker.record("a", None, Some(1));
        tracker.record("a", Some(1), None);
        assert!(tracker.is_empty(), "created then deleted");
        tracker.record("b", Some(1), Some(2));
        tracker.record("b", Some(2), Some(1));
        assert!(tracker.is_empty(), "updated and back");
        tracker.record("c", Some(1), Some(2));
        tracker.record("c", Some(2), Some(3));
        assert_eq!(tracker.take(), [("c", Some(3))]);
        assert!(tracker.is_empty());
        let mut state = State::default();
        let web = service("10.96.0.20");
        let mut relabelled = web.clone();
        relabelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        state.record_service(Some(&web), Some(&relabelled));
        assert!(
            !state.changed(),
            "a change the proxy does not read is no change"
        );
    }

    #[test]
    fn slices_merge_into_their_services_rules_and_leave_with_them() {
        let mut state = State::default();
        state.record_service(None, Some(&service("10.96.0.20")));
        state.record_slice(None, Some(&slice("web-a", &["10.244.1.3"])));
        state.record_slice(None, Some(&slice("web-b", &["10.244.2.3", "10.244.1.3"])));
        let touched = state.apply(&node());
        assert_eq!(touched.len(), 1);
        let rules = state.rules.values().next().unwrap();
        let virtual_ = rules.virtuals.values().next().unwrap();
        assert_eq!(virtual_.backends.len(), 2, "the same address once");
        state.record_slice(Some(&slice("web-b", &["10.244.2.3"])), None);
        state.apply(&node());
        let rules = state.rules.values().next().unwrap();
        assert_eq!(rules.virtuals.values().next().unwrap().backends.len(), 1);
        state.record_service(Some(&service("10.96.0.20")), None);
        state.apply(&node());
        assert!(state.rules.is_empty());
        assert!(!state.changed());
    }

    #[test]
    fn a_new_cluster_ip_replaces_the_old_rules() {
        let mut state = State::default();
        state.record_service(None, Some(&service("10.96.0.20")));
        state.apply(&node());
        state.record_service(Some(&service("10.96.0.20")), Some(&service("10.96.0.30")));
        state.apply(&node());
        let ips: Vec<Ipv4Addr> = state
            .rules
            .values()
            .flat_map(|r| r.virtuals.keys().map(|a| a.ip))
            .collect();
        assert_eq!(ips, [Ipv4Addr::new(10, 96, 0, 30)]);
        state.recompute_all(&node());
        assert_eq!(state.rules.len(), 1);
    }
}
