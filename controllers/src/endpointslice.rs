//! The EndpointSlice controller (upstream's `pkg/controller/endpointslice`):
//! for each Service with a selector, `discovery.k8s.io/v1` EndpointSlices
//! (generateName `<service>-`, labelled with the Service's name and this
//! controller's, owned by the Service) holding at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints each: one per selected pod with an
//! IP, with its ready/serving/terminating conditions, node (and the node's
//! zone, read as the slice is written), hostname and pod reference; pods
//! whose ports resolve differently go to different slices.
//!
//! Updates touch as few slices as possible ([`reconcile`], pure, as
//! upstream's reconciler): an endpoint changes in place, one no longer
//! wanted leaves its slice, new ones fill slices with room (those being
//! updated anyway first), slices are created only when needed and deleted
//! once empty, and an unchanged endpoint never moves. A Service without
//! endpoints keeps one empty placeholder slice. Slices of a deleted Service
//! go with it through the garbage collector (they are owned); slices
//! another controller manages are left alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::Value;
use skiff_runtime::{Event, Informer, Informers};

use crate::endpoints::{hostname, in_endpoints, pod_ip, target_port};
use crate::membership::{selector_of, Labels, ServicePods};
use crate::replicaset::is_ready;
use crate::workqueue::{spawn_workers, WorkQueue};

/// At most this many endpoints in one slice (upstream's default
/// `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The label naming a slice's Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY`].
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The label of the slices of a headless Service.
const HEADLESS: &str = "service.kubernetes.io/headless";
/// The label of a node's zone.
pub const ZONE: &str = "topology.kubernetes.io/zone";

/// The endpoints a Service should have, grouped by the ports they resolve
/// to: the ports as JSON (the key) -> the ports and the endpoints.
pub type Desired = BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)>;

fn ports_key(ports: &[EndpointPort]) -> String {
    serde_json::to_string(ports).expect("JSON")
}

/// The endpoint of `pod` (at `ip`, in `zone`) for `service`: ready when the
/// pod is Ready and not terminating (or the Service publishes not-ready
/// addresses), serving when it is Ready, terminating once it is being
/// deleted.
pub fn endpoint(service: &Service, pod: &Pod, ip: &str, zone: Option<String>) -> Endpoint {
    let serving = is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    Endpoint {
        addresses: vec![ip.to_owned()],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname(service, pod),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.namespace(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        zone,
        ..Endpoint::default()
    }
}

/// The endpoints of `pods` (those with an IPv4 address, not finished;
/// terminating ones included) for `service`, grouped by resolved ports;
/// `zone_of` names a node's zone.
pub fn desired(
    service: &Service,
    pods: &[&Pod],
    zone_of: &dyn Fn(&str) -> Option<String>,
) -> Desired {
    let ports: Vec<Value> = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| serde_json::to_value(p).expect("JSON"))
        .collect();
    let mut groups = Desired::new();
    for pod in pods {
        let Some(ip) = pod_ip(pod).filter(|ip| !ip.contains(':')) else {
            continue;
        };
        if !in_endpoints(pod, true) {
            continue;
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let resolved: Vec<EndpointPort> = ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: Some(p["name"].as_str().unwrap_or_default().to_owned()),
                    port: Some(i32::try_from(target_port(p, pod)?).ok()?),
                    protocol: Some(p["protocol"].as_str().unwrap_or("TCP").to_owned()),
                    app_protocol: p["appProtocol"].as_str().map(str::to_owned),
                })
            })
            .collect();
        groups
            .entry(ports_key(&resolved))
            .or_insert_with(|| (resolved, Vec::new()))
            .1
            .push(endpoint(service, pod, ip, node.and_then(zone_of)));
    }
    groups
}

/// The labels of a Service's slices: the Service's own, its name, this
/// controller's name, and whether it is headless.
pub fn slice_labels(service: &Service) -> Labels {
    let mut labels = service.labels().clone();
    labels.insert(SERVICE_NAME.into(), service.name_any());
    labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    if service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels
}

/// Whether `slice` is owned (as its controller) by `service`.
fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    slice.owner_references().iter().any(|o| {
        o.controller == Some(true) && o.kind == "Service" && Some(&o.uid) == service.uid().as_ref()
    })
}

/// A new, empty slice of `service` for `ports`.
fn new_slice(service: &Service, ports: Vec<EndpointPort>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", service.name_any())),
            namespace: service.namespace(),
            labels: Some(slice_labels(service)),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: service.name_any(),
                uid: service.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        ports: Some(ports),
        endpoints: Vec::new(),
    }
}

/// Whether `slice` is a placeholder: no ports, no endpoints.
fn is_placeholder(slice: &EndpointSlice) -> bool {
    slice.endpoints.is_empty() && slice.ports.as_ref().is_none_or(Vec::is_empty)
}

/// What makes an endpoint the same one: its addresses, hostname and pod.
type Identity = (Vec<String>, Option<String>, Option<String>);

fn identity(endpoint: &Endpoint) -> Identity {
    (
        endpoint.addresses.clone(),
        endpoint.hostname.clone(),
        endpoint.target_ref.as_ref().and_then(|r| r.name.clone()),
    )
}

/// The writes that bring a Service's slices to the desired endpoints.
#[derive(Debug, Default)]
pub struct Plan {
    /// Slices to create (with `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Slices to replace (with the resourceVersion they were read at).
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
}

/// The writes that turn `existing` (the slices labelled as `service`'s and
/// managed by this controller) into slices of at most `max` endpoints
/// holding `desired`, touching as few slices as possible.
pub fn reconcile(
    service: &Service,
    existing: Vec<EndpointSlice>,
    desired: Desired,
    max: usize,
) -> Plan {
    let mut plan = Plan::default();
    let labels = slice_labels(service);
    let mut by_ports: BTreeMap<String, Vec<EndpointSlice>> = BTreeMap::new();
    let total = existing.len();
    for slice in existing {
        if owned_by(&slice, service) {
            let ports = slice.ports.clone().unwrap_or_default();
            by_ports.entry(ports_key(&ports)).or_default().push(slice);
        } else {
            // A slice of an earlier Service of the same name.
            plan.delete.push(slice);
        }
    }
    for (key, (ports, endpoints)) in &desired {
        let mut wanted: BTreeMap<Identity, Endpoint> =
            endpoints.iter().map(|e| (identity(e), e.clone())).collect();
        let mut updated = Vec::new();
        let mut unchanged = Vec::new();
        for mut slice in by_ports.remove(key).unwrap_or_default() {
            // 1. Endpoints no longer wanted leave; changed ones change in place.
            let before = slice.endpoints.len();
            let mut changed = false;
            slice.endpoints = std::mem::take(&mut slice.endpoints)
                .into_iter()
                .filter_map(|e| {
                    let want = wanted.remove(&identity(&e))?;
                    changed |= want != e;
                    Some(want)
                })
                .collect();
            if slice.endpoints.is_empty() {
                plan.delete.push(slice);
            } else if changed || slice.endpoints.len() != before || slice.labels() != &labels {
                slice.metadata.labels = Some(labels.clone());
                updated.push(slice);
            } else {
                unchanged.push(slice);
            }
        }
        // 2. New endpoints fill the slices being updated anyway, fullest first.
        updated.sort_by_key(|s| std::cmp::Reverse(s.endpoints.len()));
        for slice in &mut updated {
            fill(slice, &mut wanted, max);
        }
        // 3. The rest go into an unchanged slice that can take them all
        //    (the fullest such), else into new slices.
        while !wanted.is_empty() {
            let room = unchanged
                .iter()
                .enumerate()
                .filter(|(_, s)| s.endpoints.len() + wanted.len() <= max)
                .max_by_key(|(_, s)| s.endpoints.len())
                .map(|(i, _)| i);
            match room {
                Some(i) if wanted.len() < max => {
                    let mut slice = unchanged.swap_remove(i);
                    fill(&mut slice, &mut wanted, max);
                    updated.push(slice);
                }
                _ => {
                    let mut slice = new_slice(service, ports.clone());
                    fill(&mut slice, &mut wanted, max);
                    plan.create.push(slice);
                }
            }
        }
        plan.update.extend(updated);
    }
    // Slices of ports no longer wanted go.
    plan.delete.extend(by_ports.into_values().flatten());
    // A Service without endpoints keeps one placeholder slice.
    if plan.create.is_empty() && plan.delete.len() == total {
        let current = plan.delete.len() == 1
            && owned_by(&plan.delete[0], service)
            && is_placeholder(&plan.delete[0])
            && plan.delete[0].labels() == &labels;
        if current {
            plan.delete.clear();
        } else {
            plan.create.push(new_slice(service, Vec::new()));
        }
    }
    // Rather than create one slice and delete another, reuse the other.
    while !plan.create.is_empty() {
        let Some(i) = plan.delete.iter().position(|s| owned_by(s, service)) else {
            break;
        };
        let old = plan.delete.swap_remove(i);
        let mut slice = plan.create.pop().expect("a slice to create");
        slice.metadata = ObjectMeta {
            labels: slice.metadata.labels,
            ..old.metadata
        };
        plan.update.push(slice);
    }
    plan
}

/// Moves wanted endpoints into `slice` until it holds `max`.
fn fill(slice: &mut EndpointSlice, wanted: &mut BTreeMap<Identity, Endpoint>, max: usize) {
    while slice.endpoints.len() < max {
        let Some((_, endpoint)) = wanted.pop_first() else {
            return;
        };
        slice.endpoints.push(endpoint);
    }
}

/// The slices this controller wrote (None: deleted) that its cache does
/// not show yet. Read over the cache, they keep a sync that follows another
/// closely from acting on slices older than its own writes (which would
/// create slices twice or conflict).
#[derive(Default)]
struct Writes {
    /// `namespace/name` -> (the Service's key, the slice as written).
    by_slice: HashMap<String, (String, Option<EndpointSlice>)>,
}

/// Whether `mine` is a later version than `seen` (resourceVersions are
/// the store's revisions; an unreadable one counts as later, so the write
/// is kept until the cache shows the same version).
fn newer(mine: &EndpointSlice, seen: &EndpointSlice) -> bool {
    let revision = |s: &EndpointSlice| s.resource_version().and_then(|v| v.parse::<u64>().ok());
    match (revision(mine), revision(seen)) {
        (Some(mine), Some(seen)) => mine > seen,
        _ => mine.resource_version() != seen.resource_version(),
    }
}

impl Writes {
    fn record(&mut self, service: &str, slice: &str, written: Option<EndpointSlice>) {
        self.by_slice
            .insert(slice.to_owned(), (service.to_owned(), written));
    }

    fn forget(&mut self, slice: &str) {
        self.by_slice.remove(slice);
    }

    /// The cache now shows `seen` (None: deleted) as the slice `slice`
    /// (`namespace/name`): whether that is this controller's own write
    /// coming back. Either way, a write the cache has caught up with (or
    /// a deleted slice) is forgotten.
    fn observed(&mut self, slice: &str, seen: Option<&EndpointSlice>) -> bool {
        let (ours, caught_up) = match (self.by_slice.get(slice), seen) {
            (Some((_, Some(mine))), Some(seen)) => (
                mine.resource_version() == seen.resource_version(),
                !newer(mine, seen),
            ),
            (Some((_, None)), None) => (true, true),
            _ => (false, seen.is_none()),
        };
        if caught_up {
            self.forget(slice);
        }
        ours
    }

    /// `cached`, the cache's slices of the Service `service`
    /// (`namespace/name`), with this controller's later writes in their
    /// place.
    fn overlay(&self, service: &str, cached: Vec<EndpointSlice>) -> Vec<EndpointSlice> {
        let namespace = service.split('/').next().unwrap_or_default();
        let mut slices: BTreeMap<String, EndpointSlice> = cached
            .into_iter()
            .map(|s| (format!("{namespace}/{}", s.name_any()), s))
            .collect();
        for (key, (of, written)) in &self.by_slice {
            match written {
                // A write the cache already shows (or something newer,
                // should its event have come before the write was
                // recorded) is read from the cache.
                Some(slice)
                    if of == service && slices.get(key).is_some_and(|c| !newer(slice, c)) =>
                {
                    None
                }
                Some(slice) if of == service => slices.insert(key.clone(), slice.clone()),
                None if of == service => slices.remove(key),
                _ => None,
            };
        }
        slices.into_values().collect()
    }
}

struct Controller {
    client: Client,
    members: Arc<ServicePods>,
    /// Every slice, this controller's indexed by their Service.
    slices: Informer<EndpointSlice>,
    /// The nodes, for their zones: read at sync time, as upstream does (a
    /// node's zone rarely changes).
    nodes: Informer<Node>,
    written: Arc<Mutex<Writes>>,
}

/// The indexed labels of a slice: its own when this controller manages it,
/// none otherwise (so that it is never found, hence left alone).
fn managed_labels(slice: &EndpointSlice) -> Labels {
    if slice.labels().get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME) {
        slice.labels().clone()
    } else {
        Labels::new()
    }
}

/// The name of the index of this controller's slices by Service.
const BY_SERVICE: &str = "managed-slices-by-service";

/// The Service (`namespace/name`) a slice this controller manages is of.
fn managed_service(slice: &EndpointSlice) -> Vec<String> {
    let namespace = slice.namespace().unwrap_or_default();
    let labels = managed_labels(slice);
    let service = labels.get(SERVICE_NAME);
    service
        .map(|s| format!("{namespace}/{s}"))
        .into_iter()
        .collect()
}

/// Runs the EndpointSlice controller with `workers` workers over the
/// Services and pods of `members`, reading slices and nodes from the
/// process's shared `informers` and writing through `client`.
pub fn run(
    client: Client,
    informers: &Informers,
    members: Arc<ServicePods>,
    workers: usize,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let slices = informers.get::<EndpointSlice>();
    slices.add_index(BY_SERVICE, managed_service);
    let nodes = informers.get::<Node>();
    async move {
        let queue = members.subscribe();
        let written: Arc<Mutex<Writes>> = Arc::default();
        {
            let (queue, members, written) = (queue.clone(), members.clone(), written.clone());
            slices.on_event(move |event| slice_changed(&queue, &members, &written, event));
        }
        let controller = Arc::new(Controller {
            client,
            members: members.clone(),
            slices: slices.clone(),
            nodes: nodes.clone(),
            written,
        });
        futures::future::join3(members.synced(), slices.wait_synced(), nodes.wait_synced()).await;
        spawn_workers(controller, queue, workers, "endpointslice-controller");
    }
}

/// A slice changed: its Service is synced again, unless the change is this
/// controller's own write coming back.
fn slice_changed(
    queue: &WorkQueue,
    members: &ServicePods,
    written: &Mutex<Writes>,
    event: Event<EndpointSlice>,
) {
    let mut written = written.lock().expect("written");
    let (before, after) = match &event {
        Event::Synced => {
            *written = Writes::default();
            for service in members.services.list() {
                queue.add(crate::workqueue::key_of(service.as_ref()));
            }
            return;
        }
        Event::Added(slice) => (None, Some(slice.as_ref())),
        Event::Updated { old, new } => (Some(managed_labels(old)), Some(new.as_ref())),
        Event::Deleted(slice) => (Some(managed_labels(slice)), None),
    };
    let Some(slice) = event.object() else { return };
    let (namespace, name) = (slice.namespace().unwrap_or_default(), slice.name_any());
    if written.observed(&format!("{namespace}/{name}"), after) {
        return;
    }
    let labels = after.map(managed_labels);
    for service in before.iter().chain(labels.iter()) {
        if let Some(service) = service.get(SERVICE_NAME) {
            queue.add(format!("{namespace}/{service}"));
        }
    }
}

impl crate::workqueue::Sync for Controller {
    type Error = kube::Error;

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        Controller::sync(self, key).await
    }
}

impl Controller {
    /// The slices of the Service `namespace/name`: the cache's, overlaid
    /// with this controller's writes the cache does not show yet.
    fn existing(&self, namespace: &str, name: &str) -> Vec<EndpointSlice> {
        // The record is locked before the cache is read, so an event that
        // forgets a write cannot fall between the two.
        let written = self.written.lock().expect("written");
        let cached = self
            .slices
            .by_index(BY_SERVICE, &format!("{namespace}/{name}"))
            .iter()
            .map(|s| (**s).clone())
            .collect();
        written.overlay(&format!("{namespace}/{name}"), cached)
    }

    fn remember(&self, service: &str, namespace: &str, name: &str, slice: Option<EndpointSlice>) {
        self.written.lock().expect("written").record(
            service,
            &format!("{namespace}/{name}"),
            slice,
        );
    }

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        let (namespace, name) = key.split_once('/').unwrap_or_default();
        // A deleted Service's slices go with it: the garbage collector
        // deletes what it owns.
        let Some(service) = self.members.services.get(namespace, name) else {
            return Ok(());
        };
        let external =
            service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
        if selector_of(&service).is_empty() || external {
            return Ok(());
        }
        let pods = self.members.pods_of(&service);
        let pods: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let plan = reconcile(
            &service,
            self.existing(namespace, name),
            desired(&service, &pods, &|node| {
                let node = self.nodes.get("", node)?;
                node.labels().get(ZONE).cloned()
            }),
            MAX_ENDPOINTS_PER_SLICE,
        );
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), namespace);
        for slice in &plan.create {
            let created = api.create(&PostParams::default(), slice).await?;
            self.remember(key, namespace, &created.name_any(), Some(created));
        }
        for slice in &plan.update {
            let slice_name = slice.name_any();
            match api
                .replace(&slice_name, &PostParams::default(), slice)
                .await
            {
                Ok(updated) => self.remember(key, namespace, &slice_name, Some(updated)),
                Err(e) => {
                    // Read it afresh from the cache next time.
                    self.written
                        .lock()
                        .expect("written")
                        .forget(&format!("{namespace}/{slice_name}"));
                    return Err(e);
                }
            }
        }
        for slice in &plan.delete {
            let slice_name = slice.name_any();
            match api.delete(&slice_name, &Default::default()).await {
                Ok(_) => self.remember(key, namespace, &slice_name, None),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 9376, "protocol": "TCP"}]},
        }))
        .unwrap()
    }

    fn pod(i: usize, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p{i}"), "namespace": "default", "uid": format!("u{i}")},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}]},
            "status": {"podIP": format!("10.244.{}.{}", i / 250, i % 250 + 1), "phase": "Running",
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn pods(range: std::ops::Range<usize>) -> Vec<Pod> {
        range.map(|i| pod(i, true)).collect()
    }

    fn want(pods: &[Pod]) -> Desired {
        desired(&service(), &pods.iter().collect::<Vec<_>>(), &|_| None)
    }

    /// Applies a plan as the apiserver would: names for created slices.
    fn apply(existing: Vec<EndpointSlice>, plan: &Plan) -> Vec<EndpointSlice> {
        let mut slices: BTreeMap<String, EndpointSlice> =
            existing.into_iter().map(|s| (s.name_any(), s)).collect();
        for s in &plan.delete {
            slices.remove(&s.name_any());
        }
        for s in &plan.update {
            slices.insert(s.name_any(), s.clone());
        }
        for (i, s) in plan.create.iter().enumerate() {
            let mut s = s.clone();
            s.metadata.name = Some(format!("web-{}-{i}", slices.len()));
            slices.insert(s.name_any(), s);
        }
        slices.into_values().collect()
    }

    fn counts(plan: &Plan) -> (usize, usize, usize) {
        (plan.create.len(), plan.update.len(), plan.delete.len())
    }

    /// The slices for `pods`, from nothing.
    fn settled(pods: &[Pod]) -> Vec<EndpointSlice> {
        let plan = reconcile(&service(), Vec::new(), want(pods), MAX_ENDPOINTS_PER_SLICE);
        apply(Vec::new(), &plan)
    }

    /// The pods named by the first `count` endpoints of the slice of `size`.
    fn pods_in(slices: &[EndpointSlice], size: usize, count: usize) -> Vec<String> {
        let slice = slices.iter().find(|s| s.endpoints.len() == size).unwrap();
        slice.endpoints[..count]
            .iter()
            .map(|e| e.target_ref.clone().unwrap().name.unwrap())
            .collect()
    }

    fn sizes(slices: &[EndpointSlice]) -> Vec<usize> {
        let mut sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort_unstable();
        sizes
    }

    #[test]
    fn endpoints_carry_conditions_ports_and_references() {
        let svc = service();
        let mut terminating = pod(1, true);
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let mut named = pod(2, false);
        named.spec.as_mut().unwrap().hostname = Some("db-0".into());
        named.spec.as_mut().unwrap().subdomain = Some("web".into());
        let mut done = pod(3, false);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let zone = |node: &str| (node == "n1").then(|| "eu-1a".to_owned());
        let found = desired(&svc, &[&pod(0, true), &terminating, &named, &done], &zone);
        assert_eq!(found.len(), 1);
        let (ports, endpoints) = found.values().next().unwrap();
        assert_eq!(
            serde_json::to_value(ports).unwrap(),
            json!([{"name": "http", "port": 9376, "protocol": "TCP"}])
        );
        let conditions: Vec<(bool, bool, bool)> = endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap();
                (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
            })
            .collect();
        assert_eq!(
            conditions,
            [
                (true, true, false),
                (false, true, true),
                (false, false, false)
            ],
            "ready, serving, terminating; the finished pod is left out"
        );
        assert_eq!(endpoints[2].hostname.as_deref(), Some("db-0"));
        assert_eq!(endpoints[0].hostname, None);
        let target = endpoints[0].target_ref.clone().unwrap();
        assert_eq!(
            (
                target.kind.as_deref(),
                target.name.as_deref(),
                target.uid.as_deref()
            ),
            (Some("Pod"), Some("p0"), Some("u0"))
        );
        assert_eq!(endpoints[0].node_name.as_deref(), Some("n1"));
        assert_eq!(
            endpoints[0].zone.as_deref(),
            Some("eu-1a"),
            "its node's zone"
        );
        // Publishing not-ready addresses makes every endpoint ready.
        let mut publish = service();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let found = desired(&publish, &[&pod(0, false)], &|_| None);
        let e = &found.values().next().unwrap().1[0];
        assert_eq!(e.conditions.as_ref().unwrap().ready, Some(true));
    }

    #[test]
    fn pods_resolving_to_different_ports_go_to_different_slices() {
        let mut svc = service();
        svc.spec.as_mut().unwrap().ports =
            serde_json::from_value(json!([{"name": "http", "port": 80, "targetPort": "web"}]))
                .unwrap();
        let mut other = pod(1, true);
        other.spec.as_mut().unwrap().containers[0]
            .ports
            .as_mut()
            .unwrap()[0]
            .container_port = 9090;
        let found = desired(&svc, &[&pod(0, true), &other], &|_| None);
        let ports: Vec<i32> = found.values().map(|(p, _)| p[0].port.unwrap()).collect();
        assert_eq!(ports.len(), 2);
        assert!(ports.contains(&8080) && ports.contains(&9090));
        let plan = reconcile(&svc, Vec::new(), found, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(counts(&plan), (2, 0, 0));
    }

    #[test]
    fn new_slices_are_labelled_and_owned_by_their_service() {
        let slices = settled(&pods(0..250));
        assert_eq!(sizes(&slices), [50, 100, 100], "250 endpoints: 3 slices");
        let s = &slices[0];
        assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(
            s.labels().get(SERVICE_NAME).map(String::as_str),
            Some("web")
        );
        assert_eq!(
            s.labels().get(MANAGED_BY).map(String::as_str),
            Some(CONTROLLER_NAME)
        );
        assert_eq!(
            s.labels().get("app").map(String::as_str),
            Some("web"),
            "the Service's labels"
        );
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Service", "svc-uid")
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
    }

    #[test]
    fn one_readiness_change_among_a_thousand_updates_one_slice() {
        let mut all = pods(0..1000);
        let slices = settled(&all);
        assert_eq!(slices.len(), 10);
        let settled_again = reconcile(
            &service(),
            slices.clone(),
            want(&all),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&settled_again), (0, 0, 0), "nothing to do");
        all[437] = pod(437, false);
        let plan = reconcile(
            &service(),
            slices.clone(),
            want(&all),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (0, 1, 0));
        let changed = &plan.update[0];
        let before = slices
            .iter()
            .find(|s| s.name_any() == changed.name_any())
            .unwrap();
        let moved: Vec<usize> = before
            .endpoints
            .iter()
            .zip(&changed.endpoints)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            moved.len(),
            1,
            "only the changed endpoint differs, in place"
        );
    }

    #[test]
    fn removals_shrink_slices_and_empty_ones_go() {
        let all = pods(0..250);
        let slices = settled(&all);
        // Drop the 50 pods of the smallest slice and 10 of another.
        let small = pods_in(&slices, 50, 50);
        let other = pods_in(&slices, 100, 10);
        let left: Vec<Pod> = all
            .into_iter()
            .filter(|p| !small.contains(&p.name_any()) && !other.contains(&p.name_any()))
            .collect();
        let plan = reconcile(
            &service(),
            slices.clone(),
            want(&left),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (0, 1, 1));
        assert_eq!(sizes(&apply(slices, &plan)), [90, 100]);
    }

    #[test]
    fn new_endpoints_fill_slices_with_room_before_new_slices() {
        let all = pods(0..250);
        let slices = settled(&all);
        // 30 more fit into the slice of 50.
        let plan = reconcile(
            &service(),
            slices.clone(),
            want(&pods(0..280)),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (0, 1, 0));
        assert_eq!(plan.update[0].endpoints.len(), 80);
        // 30 more while a full slice loses 10: they go into the slice being
        // updated anyway (fullest first), then the rest into the slice of 50.
        let full = pods_in(&slices, 100, 10);
        let next: Vec<Pod> = pods(0..280)
            .into_iter()
            .filter(|p| !full.contains(&p.name_any()))
            .collect();
        let plan = reconcile(
            &service(),
            slices.clone(),
            want(&next),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (0, 2, 0));
        assert_eq!(sizes(&apply(slices.clone(), &plan)), [70, 100, 100]);
        // 200 more: the existing slices are left alone, two new ones made.
        let plan = reconcile(
            &service(),
            slices,
            want(&pods(0..450)),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (2, 0, 0));
    }

    #[test]
    fn an_empty_service_keeps_one_placeholder() {
        let plan = reconcile(
            &service(),
            Vec::new(),
            Desired::new(),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (1, 0, 0));
        let placeholder = apply(Vec::new(), &plan);
        assert!(placeholder[0].endpoints.is_empty());
        assert_eq!(placeholder[0].ports, Some(Vec::new()));
        let again = reconcile(
            &service(),
            placeholder.clone(),
            Desired::new(),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&again), (0, 0, 0), "the placeholder stays as it is");
        // Endpoints arrive: the placeholder is reused rather than replaced.
        let plan = reconcile(
            &service(),
            placeholder.clone(),
            want(&pods(0..3)),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (0, 1, 0));
        assert_eq!(plan.update[0].name_any(), placeholder[0].name_any());
        let slices = apply(placeholder, &plan);
        // They all go: the last slice becomes the placeholder again.
        let plan = reconcile(
            &service(),
            slices.clone(),
            Desired::new(),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (0, 1, 0));
        assert!(is_placeholder(&plan.update[0]));
        // Several slices emptied: one stays as the placeholder.
        let slices = settled(&pods(0..250));
        let plan = reconcile(&service(), slices, Desired::new(), MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(counts(&plan), (0, 1, 2));
    }

    #[test]
    fn slices_of_an_earlier_service_go_and_labels_follow_the_service() {
        let slices = settled(&pods(0..3));
        let mut recreated = service();
        recreated.metadata.uid = Some("new-uid".into());
        let plan = reconcile(
            &recreated,
            slices.clone(),
            want(&pods(0..3)),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (1, 0, 1), "a foreign slice is never reused");
        let mut relabelled = service();
        relabelled.metadata.labels = Some(Labels::from([("tier".to_owned(), "fe".to_owned())]));
        let plan = reconcile(
            &relabelled,
            slices,
            want(&pods(0..3)),
            MAX_ENDPOINTS_PER_SLICE,
        );
        assert_eq!(counts(&plan), (0, 1, 0));
        assert_eq!(
            plan.update[0].labels().get("tier").map(String::as_str),
            Some("fe")
        );
        assert!(!plan.update[0].labels().contains_key("app"));
    }

    #[test]
    fn a_cache_newer_than_an_own_write_wins_and_ends_it() {
        let slices = settled(&pods(0..3));
        let at = |version: &str| {
            let mut slice = slices[0].clone();
            slice.metadata.resource_version = Some(version.into());
            slice
        };
        let mut writes = Writes::default();
        writes.record("default/web", "default/web-0-0", Some(at("7")));
        // Someone else wrote after us; the cache shows their version.
        let seen = writes.overlay("default/web", vec![at("9")]);
        assert_eq!(seen[0].resource_version().as_deref(), Some("9"));
        assert!(
            !writes.observed("default/web-0-0", Some(&at("9"))),
            "not ours"
        );
        let seen = writes.overlay("default/web", vec![at("5")]);
        assert_eq!(
            seen[0].resource_version().as_deref(),
            Some("5"),
            "the write was forgotten once the cache caught up"
        );
    }

    #[test]
    fn own_writes_are_read_over_the_cache_until_it_shows_them() {
        let slices = settled(&pods(0..3));
        let at = |slice: &EndpointSlice, version: &str| {
            let mut slice = slice.clone();
            slice.metadata.resource_version = Some(version.into());
            slice
        };
        let (old, created) = (at(&slices[0], "5"), at(&slices[0], "7"));
        let mut other = at(&slices[0], "3");
        other.metadata.name = Some("web-other".into());
        let mut writes = Writes::default();
        // Created, updated, deleted: the cache does not show them yet.
        let mut fresh = created.clone();
        fresh.metadata.name = Some("web-new".into());
        writes.record("default/web", "default/web-new", Some(fresh));
        writes.record("default/web", "default/web-0-0", Some(created.clone()));
        writes.record("default/web", "default/web-other", None);
        writes.record("default/db", "default/db-1", None);
        let seen = writes.overlay("default/web", vec![old.clone(), other.clone()]);
        let names: Vec<(String, String)> = seen
            .iter()
            .map(|s| (s.name_any(), s.resource_version().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("web-0-0".into(), "7".into()),
                ("web-new".into(), "7".into())
            ]
        );
        // An older event is not ours; ours comes back and is forgotten.
        assert!(!writes.observed("default/web-0-0", Some(&old)));
        assert!(writes.observed("default/web-0-0", Some(&created)));
        assert!(writes.observed("default/web-other", None));
        let names: Vec<String> = writes
            .overlay("default/web", vec![created.clone(), other.clone()])
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        assert_eq!(
            names,
            ["web-0-0", "web-new", "web-other"],
            "the cache rules again"
        );
        // Someone else deleting a slice we wrote is not ours, and forgotten.
        assert!(!writes.observed("default/web-new", None));
        assert_eq!(writes.overlay("default/web", Vec::new()).len(), 0);
    }

    #[test]
    fn only_slices_this_controller_manages_are_indexed() {
        let mut slice = settled(&pods(0..1)).remove(0);
        assert_eq!(
            managed_labels(&slice).get(SERVICE_NAME).map(String::as_str),
            Some("web")
        );
        slice
            .labels_mut()
            .insert(MANAGED_BY.into(), "someone-else".into());
        assert!(managed_labels(&slice).is_empty());
    }
}
