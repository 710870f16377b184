//! The garbage collector, as upstream's (pkg/controller/garbagecollector):
//! it keeps the graph of owner references between the objects of the kinds
//! that own or are owned (pods, ReplicaSets, Deployments, ...), fed by
//! metadata-only watches, and queues the uids whose case changed. A worker
//! then syncs one uid at a time against the graph ([`decide`], pure):
//! - an object whose owners are all gone is deleted (attemptToDelete), with
//!   the propagation its own finalizers ask for; one that still has an owner
//!   loses its references to the owners that are gone;
//! - an owner deleted with Foreground propagation (the `foregroundDeletion`
//!   finalizer) has its blocking dependents deleted first, themselves in the
//!   foreground when they have dependents, and loses the finalizer once none
//!   is left (processDeletingDependentsItem);
//! - an owner deleted with Orphan propagation (the `orphan` finalizer) has
//!   its reference removed from its dependents, then the finalizer
//!   (attemptToOrphan).
//!
//! An owner the graph has not seen is looked up once through the API before
//! its dependents are judged (upstream's `isDangling`): watches of different
//! kinds do not arrive in order, and a dependent may be heard of before its
//! owner.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use std::future::Future;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    Preconditions, PropagationPolicy,
};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_runtime::informers::Meta;
use skiff_runtime::{Event, Informers, MetaInformer};
use tokio::sync::mpsc;

use skiff_api::deletion::{Propagation, FOREGROUND, ORPHAN};

use crate::workqueue::WorkQueue;

const NAME: &str = "garbage-collector";
/// Workers deleting at once (upstream runs 20 on a larger machine).
const WORKERS: usize = 4;
/// The uids known gone are forgotten past this many (upstream's
/// absentOwnerCache holds 500); forgetting costs one lookup each.
const GONE_LIMIT: usize = 10_000;

/// The kinds the collector follows: (group, version, kind, plural).
pub const KINDS: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "Pod", "pods"),
    ("", "v1", "ReplicationController", "replicationcontrollers"),
    ("", "v1", "Service", "services"),
    ("", "v1", "Endpoints", "endpoints"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Secret", "secrets"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
];

/// One owner reference of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owner's uid.
    pub uid: String,
    /// Its kind, an index into [`KINDS`]; `None` for a kind not followed,
    /// which the collector cannot look at and so counts as present.
    pub kind: Option<usize>,
    /// Its name (in the dependent's namespace).
    pub name: String,
    /// `blockOwnerDeletion`.
    pub block: bool,
}

/// One object in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    /// Index into [`KINDS`].
    pub kind: usize,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its resourceVersion, the precondition of finalizer removals.
    pub resource_version: String,
    /// Its owner references.
    pub owners: Vec<Owner>,
    /// It is being deleted.
    pub deleting: bool,
    /// Its finalizers.
    pub finalizers: Vec<String>,
}

impl Vertex {
    fn has(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Deleted in the foreground: waiting for its blocking dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has(FOREGROUND)
    }

    /// Deleted with Orphan propagation: waiting to release its dependents.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.has(ORPHAN)
    }

    fn target(&self, uid: &str) -> Target {
        Target {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: uid.to_owned(),
        }
    }
}

/// The owner-reference graph, and the uids known to be gone.
#[derive(Debug, Default)]
pub struct Graph {
    vertices: HashMap<String, Vertex>,
    dependents: HashMap<String, HashSet<String>>,
    gone: HashSet<String>,
    /// Kinds listed at least once.
    synced: HashSet<usize>,
}

impl Graph {
    /// Adds or replaces the object `uid`.
    pub fn upsert(&mut self, uid: &str, vertex: Vertex) {
        self.remove(uid);
        for owner in &vertex.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.to_owned());
        }
        self.vertices.insert(uid.to_owned(), vertex);
    }

    /// Removes the object `uid`.
    pub fn remove(&mut self, uid: &str) -> Option<Vertex> {
        let vertex = self.vertices.remove(uid)?;
        for owner in &vertex.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
        Some(vertex)
    }

    /// The object `uid`, if the graph holds it.
    pub fn get(&self, uid: &str) -> Option<&Vertex> {
        self.vertices.get(uid)
    }

    /// The uids of the objects that name `uid` as an owner.
    pub fn dependents_of(&self, uid: &str) -> Vec<String> {
        let mut dependents: Vec<String> = self
            .dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default();
        dependents.sort();
        dependents
    }

    /// Records that the object `uid` is gone (deleted, or looked up and
    /// not found): its dependents may be collected.
    pub fn mark_gone(&mut self, uid: &str) {
        if self.gone.len() >= GONE_LIMIT {
            self.gone.clear();
        }
        self.gone.insert(uid.to_owned());
    }

    /// The owners of `uid` that the graph neither holds nor knows gone: to
    /// be looked up before `uid` is judged.
    pub fn unknown_owners(&self, uid: &str) -> Vec<(Owner, String)> {
        let Some(vertex) = self.vertices.get(uid) else {
            return Vec::new();
        };
        vertex
            .owners
            .iter()
            .filter(|o| o.kind.is_some())
            .filter(|o| !self.vertices.contains_key(&o.uid) && !self.gone.contains(&o.uid))
            .map(|o| (o.clone(), vertex.namespace.clone()))
            .collect()
    }

    /// Whether every kind has been listed: before, an owner not yet listed
    /// would look gone.
    pub fn synced(&self) -> bool {
        self.synced.len() == KINDS.len()
    }

    /// Takes in an object of `kind` added or changed; answers the uids to
    /// look at (upstream's graph builder's processGraphChanges).
    pub fn apply<K: Meta + ?Sized>(&mut self, kind: usize, object: &K) -> Vec<String> {
        let meta = object.object_meta();
        let uid = meta.uid.clone().unwrap_or_default();
        let next = vertex(kind, meta);
        let mut touched = Vec::new();
        // Owners waiting for their dependents look again when one of them
        // lets go of them or stops blocking them.
        if let Some(previous) = self.vertices.get(&uid) {
            for owner in &previous.owners {
                let still_blocks = next
                    .owners
                    .iter()
                    .any(|o| o.uid == owner.uid && (o.block || !owner.block));
                let waiting = self
                    .vertices
                    .get(&owner.uid)
                    .is_some_and(Vertex::deleting_dependents);
                if !still_blocks && waiting {
                    touched.push(owner.uid.clone());
                }
            }
        }
        if next.orphaning() {
            touched.push(uid.clone());
        }
        if next.deleting_dependents() {
            touched.push(uid.clone());
            touched.extend(self.dependents_of(&uid));
        }
        let judged = next.owners.iter().any(|o| {
            o.kind.is_some()
                && self
                    .vertices
                    .get(&o.uid)
                    .is_none_or(Vertex::deleting_dependents)
        });
        if judged && !next.deleting {
            touched.push(uid.clone());
        }
        self.upsert(&uid, next);
        touched
    }

    /// Takes in the deletion of the object `uid`; answers the uids to look
    /// at: its dependents, and its owners waiting for it.
    pub fn delete(&mut self, uid: &str) -> Vec<String> {
        let Some(vertex) = self.remove(uid) else {
            return Vec::new();
        };
        let mut touched = self.dependents_of(uid);
        if !touched.is_empty() {
            self.mark_gone(uid);
        }
        touched.extend(
            vertex
                .owners
                .iter()
                .filter(|o| {
                    self.vertices
                        .get(&o.uid)
                        .is_some_and(Vertex::deleting_dependents)
                })
                .map(|o| o.uid.clone()),
        );
        touched
    }

    /// Takes in one informer event of `kind`; answers the uids to look at.
    /// (The informer reports an object a relist no longer shows as
    /// deleted.)
    pub fn observe<K: Meta + ?Sized>(&mut self, kind: usize, event: Event<K>) -> Vec<String> {
        match event {
            Event::Added(o) | Event::Updated { new: o, .. } => self.apply(kind, &*o),
            Event::Deleted(o) => self.delete(o.object_meta().uid.as_deref().unwrap_or_default()),
            Event::Synced => {
                self.synced.insert(kind);
                Vec::new()
            }
        }
    }
}

/// An object acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Index into [`KINDS`].
    pub kind: usize,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid (the precondition of every write).
    pub uid: String,
}

/// What the collector does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete the object, with this propagation.
    Delete(Target, Propagation),
    /// Remove the references to these owners (by uid) from the object.
    RemoveOwners(Target, Vec<String>),
    /// Make the object's blocking owner references non-blocking, so that a
    /// foreground deletion through a cycle does not wait forever.
    Unblock(Target),
    /// Remove this finalizer from the object, at the resourceVersion held,
    /// leaving the others.
    RemoveFinalizer {
        /// The object.
        target: Target,
        /// Its resourceVersion in the graph.
        resource_version: String,
        /// The finalizers it keeps.
        keep: Vec<String>,
    },
    /// Look at this uid again (a blocking dependent of an owner deleted in
    /// the foreground).
    Requeue(String),
}

fn remove_finalizer(uid: &str, vertex: &Vertex, finalizer: &str) -> Action {
    Action::RemoveFinalizer {
        target: vertex.target(uid),
        resource_version: vertex.resource_version.clone(),
        keep: vertex
            .finalizers
            .iter()
            .filter(|f| *f != finalizer)
            .cloned()
            .collect(),
    }
}

/// What to do about `uid`, from the graph alone (owners not in it count as
/// present unless known gone: see [`Graph::unknown_owners`]). The actions
/// run in order, stopping at the first failure.
pub fn decide(graph: &Graph, uid: &str) -> Vec<Action> {
    let Some(item) = graph.get(uid) else {
        return Vec::new();
    };
    let dependents = || {
        graph
            .dependents_of(uid)
            .into_iter()
            .filter_map(|d| graph.get(&d).map(|v| (d, v)))
    };
    // attemptToOrphan: release the dependents, then the owner.
    if item.orphaning() {
        let mut actions: Vec<Action> = dependents()
            .map(|(d, v)| Action::RemoveOwners(v.target(&d), vec![uid.to_owned()]))
            .collect();
        actions.push(remove_finalizer(uid, item, ORPHAN));
        return actions;
    }
    // processDeletingDependentsItem.
    if item.deleting_dependents() {
        let blocking: Vec<(String, &Vertex)> = dependents()
            .filter(|(_, v)| v.owners.iter().any(|o| o.uid == uid && o.block))
            .collect();
        if blocking.is_empty() {
            return vec![remove_finalizer(uid, item, FOREGROUND)];
        }
        return blocking
            .into_iter()
            .filter(|(_, v)| !v.deleting_dependents())
            .map(|(d, _)| Action::Requeue(d))
            .collect();
    }
    if item.deleting || item.owners.is_empty() {
        return Vec::new();
    }
    // attemptToDeleteItem: classify the owners.
    let (mut solid, mut gone, mut waiting) = (0, Vec::new(), Vec::new());
    for owner in &item.owners {
        match graph.get(&owner.uid) {
            _ if owner.kind.is_none() => solid += 1,
            Some(o) if o.deleting_dependents() => waiting.push(owner.uid.clone()),
            Some(_) => solid += 1,
            None if graph.gone.contains(&owner.uid) => gone.push(owner.uid.clone()),
            None => solid += 1,
        }
    }
    let target = item.target(uid);
    if solid > 0 {
        if gone.is_empty() && waiting.is_empty() {
            return Vec::new();
        }
        gone.extend(waiting);
        return vec![Action::RemoveOwners(target, gone)];
    }
    if !waiting.is_empty() && dependents().next().is_some() {
        // It goes in the foreground itself, its dependents first.
        let mut actions = Vec::new();
        if dependents().any(|(_, v)| v.deleting_dependents()) && item.owners.iter().any(|o| o.block)
        {
            actions.push(Action::Unblock(target.clone()));
        }
        actions.push(Action::Delete(target, Propagation::Foreground));
        return actions;
    }
    let propagation = if item.has(ORPHAN) {
        Propagation::Orphan
    } else if item.has(FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    vec![Action::Delete(target, propagation)]
}

fn resource(kind: usize) -> ApiResource {
    let (group, version, kind_name, plural) = KINDS[kind];
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind_name), plural)
}

fn kind_index(api_version: &str, kind: &str) -> Option<usize> {
    KINDS.iter().position(|(group, version, k, _)| {
        let served = if group.is_empty() {
            (*version).to_owned()
        } else {
            format!("{group}/{version}")
        };
        *k == kind && served == api_version
    })
}

fn vertex(kind: usize, meta: &ObjectMeta) -> Vertex {
    Vertex {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        owners: meta
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|o| Owner {
                uid: o.uid.clone(),
                kind: kind_index(&o.api_version, &o.kind),
                name: o.name.clone(),
                block: o.block_owner_deletion == Some(true),
            })
            .collect(),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    }
}

/// Runs the collector over the metadata of every kind it follows, read
/// from the process's shared `informers` (metadata only, as upstream's
/// metadata informers; wire it after the components that read full
/// objects, so that their informers serve it), writing through `client`.
/// The events feed [`Graph::observe`]; the workers start once every kind
/// is listed.
pub fn run(client: Client, informers: &Informers) -> impl Future<Output = ()> + Send + 'static {
    let kinds: Vec<MetaInformer> = (0..KINDS.len())
        .map(|kind| informers.metadata(&resource(kind)))
        .collect();
    collect(client, kinds)
}

async fn collect(client: Client, kinds: Vec<MetaInformer>) {
    let (events, mut heard) = mpsc::unbounded_channel();
    for (kind, informer) in kinds.iter().enumerate() {
        let (events, mut subscription) = (events.clone(), informer.subscribe());
        tokio::spawn(async move {
            while let Some(event) = subscription.recv().await {
                if events.send((kind, event)).is_err() {
                    return;
                }
            }
        });
    }
    drop(events);
    let collector = Arc::new(Collector {
        client,
        graph: Mutex::default(),
        queue: WorkQueue::default(),
    });
    let mut started = false;
    while let Some((kind, event)) = heard.recv().await {
        let mut graph = collector.graph.lock().expect("graph");
        for uid in graph.observe(kind, event) {
            collector.queue.add(uid);
        }
        if !started && graph.synced() {
            started = true;
            crate::workqueue::spawn_workers(
                collector.clone(),
                collector.queue.clone(),
                WORKERS,
                NAME,
            );
        }
    }
}

struct Collector {
    client: Client,
    graph: Mutex<Graph>,
    queue: WorkQueue,
}

impl crate::workqueue::Sync for Collector {
    type Error = kube::Error;

    async fn sync(&self, uid: &str) -> Result<(), kube::Error> {
        let unknown = self.graph.lock().expect("graph").unknown_owners(uid);
        for (owner, namespace) in unknown {
            if self.gone(&owner, &namespace).await? {
                self.graph.lock().expect("graph").mark_gone(&owner.uid);
            }
        }
        let actions = decide(&self.graph.lock().expect("graph"), uid);
        for action in actions {
            self.act(action).await?;
        }
        Ok(())
    }
}

/// Whether an error says the object is gone or is another one now.
fn gone_or_replaced(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

impl Collector {
    /// Whether the owner is gone: not found, or found with another uid.
    async fn gone(&self, owner: &Owner, namespace: &str) -> Result<bool, kube::Error> {
        let Some(kind) = owner.kind else {
            return Ok(false);
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource(kind));
        match api.get_metadata_opt(&owner.name).await? {
            Some(found) => Ok(found.uid().as_deref() != Some(owner.uid.as_str())),
            None => Ok(true),
        }
    }

    async fn act(&self, action: Action) -> Result<(), kube::Error> {
        let api = |t: &Target| -> Api<DynamicObject> {
            Api::namespaced_with(self.client.clone(), &t.namespace, &resource(t.kind))
        };
        let with_uid = |t: &Target, patch: serde_json::Value| {
            let mut patch = patch;
            patch["metadata"]["uid"] = json!(t.uid);
            Patch::Strategic(patch)
        };
        let result = match action {
            Action::Delete(target, propagation) => {
                let params = DeleteParams {
                    propagation_policy: Some(match propagation {
                        Propagation::Background => PropagationPolicy::Background,
                        Propagation::Foreground => PropagationPolicy::Foreground,
                        Propagation::Orphan => PropagationPolicy::Orphan,
                    }),
                    preconditions: Some(Preconditions {
                        uid: Some(target.uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                api(&target).delete(&target.name, &params).await.map(|_| ())
            }
            Action::RemoveOwners(target, owners) => {
                let deletions: Vec<_> = owners
                    .iter()
                    .map(|uid| json!({"$patch": "delete", "uid": uid}))
                    .collect();
                let patch = with_uid(&target, json!({"metadata": {"ownerReferences": deletions}}));
                api(&target)
                    .patch(&target.name, &PatchParams::default(), &patch)
                    .await
                    .map(|_| ())
            }
            Action::Unblock(target) => {
                let owners: Vec<_> = self
                    .graph
                    .lock()
                    .expect("graph")
                    .get(&target.uid)
                    .map(|v| v.owners.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|o| o.block)
                    .map(|o| json!({"uid": o.uid, "blockOwnerDeletion": false}))
                    .collect();
                let patch = with_uid(&target, json!({"metadata": {"ownerReferences": owners}}));
                api(&target)
                    .patch(&target.name, &PatchParams::default(), &patch)
                    .await
                    .map(|_| ())
            }
            Action::RemoveFinalizer {
                target,
                resource_version,
                keep,
            } => {
                // A stale resourceVersion conflicts and is retried after
                // the graph catches up, as upstream's RetryOnConflict.
                let patch =
                    json!({"metadata": {"resourceVersion": resource_version, "finalizers": keep}});
                return match api(&target)
                    .patch(&target.name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    other => other.map(|_| ()),
                };
            }
            Action::Requeue(uid) => {
                self.queue.add(uid);
                Ok(())
            }
        };
        match result {
            Err(e) if gone_or_replaced(&e) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
