//! The ReplicaSet controller, which also runs ReplicationControllers (the
//! same logic over `spec.selector` as a plain map): it keeps `replicas`
//! pods that match the selector, owned through a controller reference. It
//! adopts matching orphans, releases pods that stopped matching, creates in
//! slow-start batches (1, 2, 4, ...) and deletes the least useful pods
//! first, and it waits for its own creations and deletions to show in its
//! cache (expectations) before deciding again, so a slow watch never makes
//! it create twice. The decisions ([`diff`], [`batches`], [`deletion_rank`],
//! [`status`]) are pure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{ApiResource, DynamicObject};
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};
use skiff_runtime::events::Type;
use skiff_runtime::informers::index;
use skiff_runtime::{Event, Informer, Informers};

use crate::control::{ApiControl, Control};
use crate::selector::matches;
use crate::workqueue::WorkQueue;

/// At most this many pods are created or deleted in one sync (upstream's
/// `burstReplicas`).
pub const BURST: usize = 500;
/// How long the changes of an owned pod's status are gathered before its
/// owner syncs.
const GATHER: Duration = Duration::from_millis(100);
/// Expectations older than this are given up on.
const EXPECTATIONS_TTL: Duration = Duration::from_secs(300);

/// How many pods to create (positive) or delete (negative).
pub fn diff(replicas: i64, active: usize) -> i64 {
    (replicas - active as i64).clamp(-(BURST as i64), BURST as i64)
}

/// Slow-start batch sizes for `n` creations: 1, 2, 4, ... summing to `n`.
pub fn batches(n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let (mut left, mut size) = (n, 1);
    while left > 0 {
        let take = size.min(left);
        sizes.push(take);
        left -= take;
        size *= 2;
    }
    sizes
}

fn condition_since(pod: &Pod, kind: &str) -> Option<(bool, Option<jiff::Timestamp>)> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)?;
    Some((
        condition.status == "True",
        condition.last_transition_time.as_ref().map(|t| t.0),
    ))
}

/// Whether a pod is Ready.
pub fn is_ready(pod: &Pod) -> bool {
    condition_since(pod, "Ready").is_some_and(|(ready, _)| ready)
}

/// Whether a pod has been Ready for `min_ready` by `now`.
pub fn is_available(pod: &Pod, min_ready: i64, now: jiff::Timestamp) -> bool {
    match condition_since(pod, "Ready") {
        Some((true, since)) => ready_for(since, min_ready, now),
        _ => false,
    }
}

/// Whether Ready `since` makes `min_ready` seconds by `now`.
fn ready_for(since: Option<jiff::Timestamp>, min_ready: i64, now: jiff::Timestamp) -> bool {
    min_ready <= 0 || since.is_some_and(|t| now.duration_since(t).as_secs() >= min_ready)
}

/// Whether a pod still counts: not finished, not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Upstream's order for deleting pods, most deletable first: unscheduled
/// before scheduled, Pending before Unknown before Running, not ready
/// before ready, ready for less time first, more restarts first, newer
/// first. Sort ascending by this key.
pub fn deletion_rank(pod: &Pod) -> impl Ord {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let scheduled = spec
        .and_then(|s| s.node_name.as_ref())
        .is_some_and(|n| !n.is_empty());
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Running") => 2,
        _ => 1,
    };
    let ready = condition_since(pod, "Ready");
    let is_ready = ready.is_some_and(|(r, _)| r);
    // Ready more recently sorts first: the negated time.
    let ready_since = ready.and_then(|(_, t)| t).map_or(0, |t| -t.as_second());
    let restarts: i32 = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum());
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(0, |t| -t.0.as_second());
    (
        scheduled,
        phase,
        is_ready,
        ready_since,
        -i64::from(restarts),
        created,
    )
}

/// The status of a ReplicaSet (or RC) at `generation` whose active owned
/// pods are `pods`. One pass, nothing copied: it runs over every pod of
/// the set on each of its syncs.
pub fn status(
    template_labels: &BTreeMap<String, String>,
    generation: i64,
    min_ready: i64,
    pods: &[&Pod],
    now: jiff::Timestamp,
) -> Value {
    let (mut labelled, mut ready, mut available) = (0, 0, 0);
    for pod in pods {
        let labels = pod.metadata.labels.as_ref();
        let has = |(k, v): (&String, &String)| labels.and_then(|l| l.get(k)) == Some(v);
        if template_labels.iter().all(has) {
            labelled += 1;
        }
        if let Some((true, since)) = condition_since(pod, "Ready") {
            ready += 1;
            if ready_for(since, min_ready, now) {
                available += 1;
            }
        }
    }
    json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": labelled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": generation,
    })
}

/// Creations and deletions a controller waits to see in its cache.
#[derive(Default)]
struct Expectations {
    pending: HashMap<String, (i64, HashSet<String>, Instant)>,
}

impl Expectations {
    fn satisfied(&self, key: &str) -> bool {
        self.pending.get(key).is_none_or(|(adds, dels, at)| {
            (*adds <= 0 && dels.is_empty()) || at.elapsed() > EXPECTATIONS_TTL
        })
    }

    fn expect(&mut self, key: &str, adds: i64, dels: HashSet<String>) {
        self.pending
            .insert(key.to_owned(), (adds, dels, Instant::now()));
    }

    fn created(&mut self, key: &str) {
        if let Some((adds, _, _)) = self.pending.get_mut(key) {
            *adds -= 1;
        }
    }

    fn deleted(&mut self, key: &str, uid: &str) {
        if let Some((_, dels, _)) = self.pending.get_mut(key) {
            dels.remove(uid);
        }
    }
}

/// A kind this controller runs: ReplicaSet or ReplicationController.
#[derive(Clone)]
pub struct Kind {
    /// Where its objects are served.
    pub resource: ApiResource,
}

impl Kind {
    /// apps/v1 ReplicaSet.
    pub fn replica_set() -> Self {
        Kind {
            resource: ApiResource::from_gvk_with_plural(
                &kube::api::GroupVersionKind::gvk("apps", "v1", "ReplicaSet"),
                "replicasets",
            ),
        }
    }

    /// v1 ReplicationController.
    pub fn replication_controller() -> Self {
        Kind {
            resource: ApiResource::from_gvk_with_plural(
                &kube::api::GroupVersionKind::gvk("", "v1", "ReplicationController"),
                "replicationcontrollers",
            ),
        }
    }
}

/// One kind of owner, read from its shared informer.
trait Owners: Send + Sync {
    /// The owner `namespace/name`, as the sync reads it.
    fn get(&self, namespace: &str, name: &str) -> Option<DynamicObject>;
    /// The names of the owners of `namespace` whose selector selects
    /// `labels`.
    fn selecting(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<String>;
}

/// A typed owner informer, with where its kind keeps its selector.
struct Typed<K> {
    informer: Informer<K>,
    selector: fn(&K) -> Value,
}

impl<K> Owners for Typed<K>
where
    K: Resource + serde::Serialize + Send + Sync + 'static,
{
    fn get(&self, namespace: &str, name: &str) -> Option<DynamicObject> {
        // One owner per sync is converted, not the cache.
        let owner = self.informer.get(namespace, name)?;
        serde_json::to_value(owner.as_ref())
            .and_then(serde_json::from_value)
            .ok()
    }

    fn selecting(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<String> {
        let owners = self.informer.by_index(index::NAMESPACE, namespace);
        owners
            .iter()
            .filter(|o| matches(&(self.selector)(o), labels))
            .map(|o| o.meta().name.clone().unwrap_or_default())
            .collect()
    }
}

struct Controller<C> {
    control: C,
    kinds: Vec<Kind>,
    /// The owners of each kind, in the order of `kinds`.
    owners: Vec<Box<dyn Owners>>,
    /// Every pod, indexed by controller uid and orphans by namespace.
    pods: Informer<Pod>,
    /// Where pods are served.
    pod_resource: ApiResource,
    queue: WorkQueue,
    expectations: Mutex<Expectations>,
}

fn key(kind: usize, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// The controlling owner reference of a pod, if any.
fn controller_of(
    pod: &Pod,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// Runs the ReplicaSet and ReplicationController controller, reading from
/// the process's shared `informers` and writing through `client`.
pub fn run(
    client: Client,
    informers: &Informers,
    workers: usize,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let sets = informers.get::<ReplicaSet>();
    let controllers = informers.get::<ReplicationController>();
    let pods = informers.get::<Pod>();
    async move {
        let queue = WorkQueue::default();
        enqueue_owners(sets.subscribe(), 0, queue.clone());
        enqueue_owners(controllers.subscribe(), 1, queue.clone());
        let control = ApiControl::new(client, "replicaset-controller");
        let controller = Arc::new(Controller::new(control, sets, controllers, pods, queue));
        let mut pod_events = controller.pods.subscribe();
        crate::workqueue::spawn_workers(
            controller.clone(),
            controller.queue.clone(),
            workers,
            "replicaset-controller",
        );
        while let Some(event) = pod_events.recv().await {
            controller.pod_event(event);
        }
    }
}

/// Queues the key of every owner of kind `kind` added or changed.
fn enqueue_owners<K: Resource + Send + Sync + 'static>(
    mut events: tokio::sync::mpsc::UnboundedReceiver<Event<K>>,
    kind: usize,
    queue: WorkQueue,
) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Added(o) | Event::Updated { new: o, .. } = event {
                let meta = o.meta();
                queue.add(key(
                    kind,
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name.as_deref().unwrap_or_default(),
                ));
            }
        }
    });
}

impl<C: Control> crate::workqueue::Sync for Controller<C> {
    type Error = kube::Error;

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        Controller::sync(self, key).await
    }
}

impl<C: Control> Controller<C> {
    /// A controller writing through `control`, reading the owners and pods
    /// from these informers (given the indexes it reads).
    fn new(
        control: C,
        sets: Informer<ReplicaSet>,
        controllers: Informer<ReplicationController>,
        pods: Informer<Pod>,
        queue: WorkQueue,
    ) -> Self {
        sets.add_index(index::NAMESPACE, index::namespace);
        controllers.add_index(index::NAMESPACE, index::namespace);
        pods.add_index(index::CONTROLLER, index::controller_uid)
            .add_index(index::ORPHANS, index::orphan_namespace);
        Controller {
            control,
            kinds: vec![Kind::replica_set(), Kind::replication_controller()],
            owners: vec![
                Box::new(Typed {
                    informer: sets,
                    selector: |rs: &ReplicaSet| {
                        serde_json::to_value(rs.spec.as_ref().map(|s| &s.selector))
                            .unwrap_or_default()
                    },
                }),
                Box::new(Typed {
                    informer: controllers,
                    selector: |rc: &ReplicationController| {
                        serde_json::to_value(rc.spec.as_ref().and_then(|s| s.selector.as_ref()))
                            .unwrap_or_default()
                    },
                }),
            ],
            pods,
            pod_resource: ApiResource::erase::<Pod>(&()),
            queue,
            expectations: Mutex::default(),
        }
    }

    /// A pod changed: its owner syncs (and learns of its creation or
    /// deletion); an orphan wakes the owners that might adopt it.
    fn pod_event(&self, event: Event<Pod>) {
        let (pod, deleted, first_sight) = match event {
            Event::Added(pod) => (pod, false, true),
            Event::Updated { new, .. } => (new, false, false),
            Event::Deleted(pod) => (pod, true, false),
            Event::Synced => return,
        };
        let uid = pod.uid().unwrap_or_default();
        let namespace = pod.namespace().unwrap_or_default();
        match controller_of(&pod) {
            Some(owner) => {
                let Some(kind) = self
                    .kinds
                    .iter()
                    .position(|k| k.resource.kind == owner.kind)
                else {
                    return;
                };
                let key = key(kind, &namespace, &owner.name);
                let leaving = deleted || pod.metadata.deletion_timestamp.is_some();
                let mut expectations = self.expectations.lock().expect("expectations");
                if leaving {
                    expectations.deleted(&key, &uid);
                } else if first_sight {
                    expectations.created(&key);
                }
                drop(expectations);
                // An arrival or a departure may meet the owner's
                // expectations: it syncs at once. Other changes (status,
                // the bulk of a rollout's events) are gathered for a
                // moment, as each sync reads every pod of its owner.
                if first_sight || leaving {
                    self.queue.add(key);
                } else {
                    self.queue.add_after(key, GATHER);
                }
            }
            None if !deleted => {
                for (kind, owners) in self.owners.iter().enumerate() {
                    for name in owners.selecting(&namespace, pod.labels()) {
                        self.queue.add(key(kind, &namespace, &name));
                    }
                }
            }
            None => {}
        }
    }

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        let mut parts = key.splitn(3, '/');
        let kind: usize = parts.next().and_then(|k| k.parse().ok()).unwrap_or(0);
        let (namespace, name) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let resource = &self.kinds[kind].resource;
        let Some(owner) = self.owners[kind].get(namespace, name) else {
            return Ok(());
        };
        if owner.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let uid = owner.uid().unwrap_or_default();
        let spec = &owner.data["spec"];
        // Parsed once: it is matched against every pod of the namespace.
        let selector = crate::selector::parse(&spec["selector"]);
        // Adopt matching orphans, release owned pods that stopped matching.
        let mut owned: Vec<Arc<Pod>> = Vec::new();
        // Its own pods and the namespace's orphans, from the indexes: a sync
        // never looks at every pod.
        let candidates = [
            self.pods.by_index(index::CONTROLLER, &uid),
            self.pods.by_index(index::ORPHANS, namespace),
        ];
        for pod in candidates.into_iter().flatten() {
            if pod.metadata.namespace.as_deref() != Some(namespace) {
                continue;
            }
            let controller = controller_of(&pod);
            if controller.is_some_and(|o| o.uid != uid) {
                continue;
            }
            let selected = selector
                .as_ref()
                .is_some_and(|s| s.matches_map(pod.labels()));
            match controller {
                Some(o) if o.uid == uid => {
                    if selected {
                        owned.push(pod);
                    } else {
                        self.set_owner(&pod, None, resource).await?;
                    }
                }
                None if selected && is_active(&pod) => {
                    self.set_owner(&pod, Some(&owner), resource).await?;
                    owned.push(pod);
                }
                _ => {}
            }
        }
        let active: Vec<&Pod> = owned
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| is_active(p))
            .collect();
        let replicas = spec["replicas"].as_i64().unwrap_or(1);
        let satisfied = self
            .expectations
            .lock()
            .expect("expectations")
            .satisfied(key);
        if satisfied {
            let change = diff(replicas, active.len());
            if change > 0 {
                self.create(key, &owner, resource, change as usize).await?;
            } else if change < 0 {
                let mut doomed = active.clone();
                doomed.sort_by_key(|p| deletion_rank(p));
                doomed.truncate((-change) as usize);
                self.delete(key, &owner, resource, &doomed).await?;
            }
        }
        let template_labels: BTreeMap<String, String> =
            serde_json::from_value(spec["template"]["metadata"]["labels"].clone())
                .unwrap_or_default();
        let generation = owner.metadata.generation.unwrap_or(0);
        let min_ready = spec["minReadySeconds"].as_i64().unwrap_or(0);
        let status = status(
            &template_labels,
            generation,
            min_ready,
            &active,
            jiff::Timestamp::now(),
        );
        let current = &owner.data["status"];
        let changed = [
            "replicas",
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
            "observedGeneration",
        ]
        .iter()
        .any(|f| current[*f].as_i64().unwrap_or(0) != status[*f].as_i64().unwrap_or(0));
        if changed {
            self.control
                .patch_status(resource, namespace, name, json!({"status": status}))
                .await?;
        }
        // Pods that become available after minReadySeconds need a later look.
        if min_ready > 0
            && active
                .iter()
                .any(|p| is_ready(p) && !is_available(p, min_ready, jiff::Timestamp::now()))
        {
            self.queue
                .add_after(key.to_owned(), Duration::from_secs(min_ready as u64));
        }
        Ok(())
    }

    /// Sets (or with `None` removes) the pod's controller reference.
    async fn set_owner(
        &self,
        pod: &Pod,
        owner: Option<&DynamicObject>,
        resource: &ApiResource,
    ) -> Result<(), kube::Error> {
        let mut references: Vec<Value> = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|o| o.controller != Some(true))
            .map(|o| serde_json::to_value(o).expect("JSON"))
            .collect();
        if let Some(owner) = owner {
            references.push(controller_reference(owner, resource));
        }
        let patch = json!({"metadata": {"ownerReferences": references, "uid": pod.uid()}});
        let namespace = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        match self
            .control
            .patch(&self.pod_resource, &namespace, &name, patch)
            .await
        {
            Ok(_) => Ok(()),
            // Gone meanwhile: nothing to adopt or release.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create(
        &self,
        key: &str,
        owner: &DynamicObject,
        resource: &ApiResource,
        count: usize,
    ) -> Result<(), kube::Error> {
        self.expectations
            .lock()
            .expect("expectations")
            .expect(key, count as i64, HashSet::new());
        let template = &owner.data["spec"]["template"];
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": format!("{}-", owner.name_any()),
                "labels": template["metadata"]["labels"],
                "annotations": template["metadata"]["annotations"],
                "ownerReferences": [controller_reference(owner, resource)],
            },
            "spec": template["spec"],
        });
        let namespace = owner.namespace().unwrap_or_default();
        let mut made = 0;
        for size in batches(count) {
            let results = futures::future::join_all((0..size).map(|_| {
                self.control
                    .create(&self.pod_resource, &namespace, pod.clone())
            }))
            .await;
            let mut failure = None;
            for result in results {
                match result {
                    Ok(created) => {
                        made += 1;
                        let message = format!("Created pod: {created}");
                        self.control.record(
                            reference_of(owner, resource),
                            Type::Normal,
                            "SuccessfulCreate",
                            message,
                        );
                    }
                    Err(e) => {
                        let message = format!("Error creating: {e}");
                        self.control.record(
                            reference_of(owner, resource),
                            Type::Warning,
                            "FailedCreate",
                            message,
                        );
                        failure = Some(e);
                    }
                }
            }
            if let Some(e) = failure {
                // The creations never attempted will not be seen.
                let mut expectations = self.expectations.lock().expect("expectations");
                for _ in made..count {
                    expectations.created(key);
                }
                // A namespace being deleted takes no new pods: no retry.
                let terminating = matches!(&e, kube::Error::Api(s) if s.code == 403);
                return if terminating { Ok(()) } else { Err(e) };
            }
        }
        Ok(())
    }

    async fn delete(
        &self,
        key: &str,
        owner: &DynamicObject,
        resource: &ApiResource,
        pods: &[&Pod],
    ) -> Result<(), kube::Error> {
        let uids: HashSet<String> = pods.iter().filter_map(|p| p.uid()).collect();
        self.expectations
            .lock()
            .expect("expectations")
            .expect(key, 0, uids);
        let namespace = owner.namespace().unwrap_or_default();
        let results = futures::future::join_all(pods.iter().map(|pod| {
            let namespace = &namespace;
            async move {
                let name = pod.name_any();
                let deleted = self
                    .control
                    .delete(&self.pod_resource, namespace, &name)
                    .await;
                (pod, deleted)
            }
        }))
        .await;
        for (pod, result) in results {
            match result {
                Ok(_) => {
                    let message = format!("Deleted pod: {}", pod.name_any());
                    self.control.record(
                        reference_of(owner, resource),
                        Type::Normal,
                        "SuccessfulDelete",
                        message,
                    );
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.expectations
                        .lock()
                        .expect("expectations")
                        .deleted(key, &pod.uid().unwrap_or_default());
                }
                Err(e) => {
                    self.expectations
                        .lock()
                        .expect("expectations")
                        .deleted(key, &pod.uid().unwrap_or_default());
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// The controller reference an owner puts on its pods.
fn controller_reference(owner: &DynamicObject, resource: &ApiResource) -> Value {
    json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": owner.name_any(),
        "uid": owner.uid(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The reference to a dynamic object an Event is about.
pub fn reference_of(
    object: &DynamicObject,
    resource: &ApiResource,
) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(resource.api_version.clone()),
        kind: Some(resource.kind.clone()),
        name: Some(object.name_any()),
        namespace: object.namespace(),
        uid: object.uid(),
        resource_version: object.resource_version(),
        field_path: None,
    }
}

#[cfg(test)]
mod tests;
