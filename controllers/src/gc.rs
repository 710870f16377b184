//! The garbage collector: it keeps the graph of owner references between
//! the objects of the kinds that own or are owned (pods, ReplicaSets,
//! Deployments, ...), and
//! - deletes an object once every owner it names is gone (Background
//!   propagation, the default);
//! - for an owner deleted with Foreground propagation (the
//!   `foregroundDeletion` finalizer), deletes its dependents first and
//!   removes the finalizer once none that blocks its deletion is left;
//! - for an owner deleted with Orphan propagation (the `orphan`
//!   finalizer), removes the owner's reference from its dependents, then
//!   the finalizer.
//!
//! What to do about one object is decided by [`decide`], a pure function of
//! the graph.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_runtime::informers::Meta;
use skiff_runtime::{Event, Informers, MetaInformer};
use tokio::sync::mpsc;

use skiff_api::deletion::{FOREGROUND, ORPHAN};

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

/// One object in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    /// Index into [`KINDS`].
    pub kind: usize,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its owners of the kinds followed: uid, and whether it blocks the
    /// owner's deletion.
    pub owners: Vec<(String, bool)>,
    /// It also has owners of kinds not followed: never collected.
    pub foreign: bool,
    /// It is being deleted.
    pub deleting: bool,
    /// Its finalizers.
    pub finalizers: Vec<String>,
}

/// The owner-reference graph.
#[derive(Debug, Default)]
pub struct Graph {
    vertices: HashMap<String, Vertex>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// Adds or replaces the object `uid`.
    pub fn upsert(&mut self, uid: &str, vertex: Vertex) {
        self.remove(uid);
        for (owner, _) in &vertex.owners {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .insert(uid.to_owned());
        }
        self.vertices.insert(uid.to_owned(), vertex);
    }

    /// Removes the object `uid`.
    pub fn remove(&mut self, uid: &str) -> Option<Vertex> {
        let vertex = self.vertices.remove(uid)?;
        for (owner, _) in &vertex.owners {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        Some(vertex)
    }

    /// The uids of the objects that name `uid` as an owner.
    pub fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// What the collector does about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete it, its owners being gone (Background propagation).
    Delete,
    /// Delete its dependents (with Foreground propagation), then come back.
    DeleteDependents(Vec<String>),
    /// Remove this finalizer from it.
    RemoveFinalizer(&'static str),
    /// Remove its reference from these dependents, then the `orphan`
    /// finalizer.
    Orphan(Vec<String>),
    /// Nothing.
    Nothing,
}

/// Decides what to do about `uid`, once the graph holds everything.
pub fn decide(graph: &Graph, uid: &str) -> Action {
    let Some(vertex) = graph.vertices.get(uid) else {
        return Action::Nothing;
    };
    let has = |f: &str| vertex.finalizers.iter().any(|x| x == f);
    if vertex.deleting && has(ORPHAN) {
        return Action::Orphan(graph.dependents_of(uid));
    }
    if vertex.deleting && has(FOREGROUND) {
        let dependents = graph.dependents_of(uid);
        let blocking: Vec<String> = dependents
            .iter()
            .filter(|d| {
                graph.vertices[*d]
                    .owners
                    .iter()
                    .any(|(owner, block)| owner == uid && *block)
            })
            .cloned()
            .collect();
        if blocking.is_empty() {
            return Action::RemoveFinalizer(FOREGROUND);
        }
        let undeleted: Vec<String> = dependents
            .into_iter()
            .filter(|d| !graph.vertices[d].deleting)
            .collect();
        return if undeleted.is_empty() {
            Action::Nothing
        } else {
            Action::DeleteDependents(undeleted)
        };
    }
    let owners_gone = !vertex.foreign
        && !vertex.owners.is_empty()
        && vertex
            .owners
            .iter()
            .all(|(owner, _)| !graph.vertices.contains_key(owner));
    if owners_gone && !vertex.deleting {
        Action::Delete
    } else {
        Action::Nothing
    }
}

fn resource(kind: usize) -> ApiResource {
    let (group, version, kind_name, plural) = KINDS[kind];
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind_name), plural)
}

fn followed(kind: &str) -> bool {
    KINDS.iter().any(|(_, _, k, _)| *k == kind)
}

fn vertex(kind: usize, meta: &ObjectMeta) -> Vertex {
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    Vertex {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        owners: owners
            .iter()
            .filter(|o| followed(&o.kind))
            .map(|o| (o.uid.clone(), o.block_owner_deletion == Some(true)))
            .collect(),
        foreign: owners.iter().any(|o| !followed(&o.kind)),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    }
}

/// Runs the collector over the metadata of every kind it follows, read
/// from the process's shared `informers` (wire it after the components that
/// read full objects, so their informers serve it), writing through
/// `client`.
pub fn run(
    client: Client,
    informers: &Informers,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    // Metadata is all the collector reads, as upstream's metadata
    // informers.
    let kinds: Vec<_> = (0..KINDS.len())
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
    let mut graph = Graph::default();
    let mut synced = HashSet::new();
    let mut pending: HashSet<String> = HashSet::new();
    while let Some((kind, event)) = heard.recv().await {
        match event {
            Event::Added(o) | Event::Updated { new: o, .. } => {
                let meta = o.object_meta();
                let uid = meta.uid.clone().unwrap_or_default();
                let v = vertex(kind, meta);
                pending.extend(v.owners.iter().map(|(owner, _)| owner.clone()));
                graph.upsert(&uid, v);
                pending.insert(uid);
            }
            Event::Deleted(o) => {
                let uid = o.object_meta().uid.clone().unwrap_or_default();
                if let Some(v) = graph.remove(&uid) {
                    pending.extend(v.owners.into_iter().map(|(owner, _)| owner));
                }
                pending.extend(graph.dependents_of(&uid));
            }
            Event::Synced => {
                synced.insert(kind);
            }
        }
        // Decide only once every kind is listed (an owner not yet listed
        // is not gone), and once the burst of events is taken in.
        if synced.len() < KINDS.len() || !heard.is_empty() {
            continue;
        }
        for uid in std::mem::take(&mut pending) {
            let action = decide(&graph, &uid);
            if action != Action::Nothing {
                act(&client, &graph, &uid, action).await;
            }
        }
    }
}

async fn act(client: &Client, graph: &Graph, uid: &str, action: Action) {
    let Some(vertex) = graph.vertices.get(uid) else {
        return;
    };
    let api = |v: &Vertex| -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), &v.namespace, &resource(v.kind))
    };
    let result = match action {
        Action::Nothing => Ok(()),
        Action::Delete => {
            let params = DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid.to_owned()),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            api(vertex).delete(&vertex.name, &params).await.map(|_| ())
        }
        Action::DeleteDependents(dependents) => {
            for dependent in dependents {
                if let Some(d) = graph.vertices.get(&dependent) {
                    let _ = api(d).delete(&d.name, &DeleteParams::foreground()).await;
                }
            }
            Ok(())
        }
        Action::RemoveFinalizer(finalizer) => {
            remove_finalizer(&api(vertex), vertex, finalizer).await
        }
        Action::Orphan(dependents) => {
            for dependent in dependents {
                if let Some(d) = graph.vertices.get(&dependent) {
                    let owners: Vec<serde_json::Value> = match api(d).get(&d.name).await {
                        Ok(object) => object
                            .owner_references()
                            .iter()
                            .filter(|o| o.uid != uid)
                            .map(|o| serde_json::to_value(o).expect("JSON"))
                            .collect(),
                        Err(_) => continue,
                    };
                    let patch = json!({"metadata": {"ownerReferences": owners}});
                    let _ = api(d)
                        .patch(&d.name, &PatchParams::default(), &Patch::Merge(patch))
                        .await;
                }
            }
            remove_finalizer(&api(vertex), vertex, ORPHAN).await
        }
    };
    if let Err(e) = result {
        if !matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409) {
            eprintln!(
                "garbage-collector: {}/{}: {e}",
                vertex.namespace, vertex.name
            );
        }
    }
}

async fn remove_finalizer(
    api: &Api<DynamicObject>,
    vertex: &Vertex,
    finalizer: &str,
) -> Result<(), kube::Error> {
    let rest: Vec<&String> = vertex
        .finalizers
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = json!({"metadata": {"finalizers": rest}});
    api.patch(&vertex.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(owners: &[(&str, bool)], deleting: bool, finalizers: &[&str]) -> Vertex {
        Vertex {
            kind: 0,
            namespace: "default".into(),
            name: "x".into(),
            owners: owners.iter().map(|(o, b)| (o.to_string(), *b)).collect(),
            foreign: false,
            deleting,
            finalizers: finalizers.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn dependents_of_a_vanished_owner_are_deleted() {
        let mut g = Graph::default();
        g.upsert("rs", v(&[("deploy", true)], false, &[]));
        g.upsert("pod", v(&[("rs", true)], false, &[]));
        assert_eq!(
            decide(&g, "rs"),
            Action::Delete,
            "its owner is not in the graph"
        );
        assert_eq!(decide(&g, "pod"), Action::Nothing, "its owner is there");
        g.remove("rs");
        assert_eq!(decide(&g, "pod"), Action::Delete);
        g.upsert("lonely", v(&[], false, &[]));
        assert_eq!(
            decide(&g, "lonely"),
            Action::Nothing,
            "no owners, nothing to collect"
        );
        let mut foreign = v(&[("gone", true)], false, &[]);
        foreign.foreign = true;
        g.upsert("foreign", foreign);
        assert_eq!(
            decide(&g, "foreign"),
            Action::Nothing,
            "an owner of a kind not followed"
        );
    }

    #[test]
    fn foreground_deletes_dependents_then_lets_the_owner_go() {
        let mut g = Graph::default();
        g.upsert("rs", v(&[], true, &[FOREGROUND]));
        g.upsert("a", v(&[("rs", true)], false, &[]));
        g.upsert("b", v(&[("rs", true)], true, &[]));
        assert_eq!(decide(&g, "rs"), Action::DeleteDependents(vec!["a".into()]));
        g.upsert("a", v(&[("rs", true)], true, &[]));
        assert_eq!(decide(&g, "rs"), Action::Nothing, "waiting for them to go");
        g.remove("a");
        g.remove("b");
        assert_eq!(decide(&g, "rs"), Action::RemoveFinalizer(FOREGROUND));
    }

    #[test]
    fn orphaning_releases_the_dependents() {
        let mut g = Graph::default();
        g.upsert("rs", v(&[], true, &[ORPHAN]));
        g.upsert("a", v(&[("rs", true)], false, &[]));
        assert_eq!(decide(&g, "rs"), Action::Orphan(vec!["a".into()]));
        g.upsert("a", v(&[], false, &[]));
        assert_eq!(decide(&g, "rs"), Action::Orphan(vec![]));
    }
}
