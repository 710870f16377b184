//! The namespace controller, as upstream's (pkg/controller/namespace and
//! its namespaced_resources_deleter): a namespace being deleted (held by
//! the `kubernetes` finalizer in its spec) is marked Terminating, has the
//! collection of every namespaced kind deleted (Background propagation, so
//! no `orphan` finalizer holds it), and once nothing is left, loses the
//! finalizer through `namespaces/NAME/finalize`, which lets it go.
//!
//! Content that takes time to go is waited for as upstream waits: pods for
//! their grace period (counted from the namespace's deletion), objects with
//! finalizers for 15 seconds, the namespace coming back after half the
//! estimate plus a second; content that remains for no known reason is an
//! error, retried with the work queue's back-off. The decisions ([`start`],
//! [`left_of_kind`], [`finish`], [`pod_estimate`]) are pure.
//!
//! Upstream also waits five seconds after a namespace's deletion for other
//! apiservers and etcd members to see it; this is one apiserver over one
//! store, so it starts at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_runtime::{Informer, Informers};

use crate::workqueue::{enqueue, spawn_workers, RateLimiter, WorkQueue};

/// The finalizer the namespace controller serves.
pub const FINALIZER: &str = "kubernetes";
const NAME: &str = "namespace-controller";
/// How long objects with finalizers are given (upstream's
/// `finalizerEstimateSeconds`).
pub const FINALIZER_ESTIMATE: i64 = 15;

/// A namespaced kind whose content the controller deletes.
#[derive(Debug, Clone)]
pub struct Kind {
    /// Where it is served.
    pub resource: ApiResource,
    /// It serves `deletecollection` (else each item is deleted).
    pub collection: bool,
    /// It serves `list` (else what is left cannot be checked).
    pub list: bool,
}

/// The namespaced kinds the server serves that can be deleted, from
/// discovery.
async fn namespaced_kinds(client: &Client) -> Result<Vec<Kind>, kube::Error> {
    let mut lists = vec![(
        String::new(),
        "v1".to_owned(),
        client.list_core_api_resources("v1").await?,
    )];
    for group in client.list_api_groups().await?.groups {
        if let Some(version) = group.preferred_version {
            let list = client
                .list_api_group_resources(&version.group_version)
                .await?;
            lists.push((group.name, version.version, list));
        }
    }
    let mut kinds = Vec::new();
    for (group, version, list) in lists {
        for r in list.resources {
            let serves = |verb: &str| r.verbs.iter().any(|v| v == verb);
            if r.namespaced && !r.name.contains('/') && serves("delete") {
                let gvk = GroupVersionKind::gvk(&group, &version, &r.kind);
                kinds.push(Kind {
                    resource: ApiResource::from_gvk_with_plural(&gvk, &r.name),
                    collection: serves("deletecollection"),
                    list: serves("list"),
                });
            }
        }
    }
    Ok(kinds)
}

/// The first steps for a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set its phase to Terminating.
    MarkTerminating,
    /// Delete what is in it, then look at what is left ([`finish`]).
    DeleteContent,
}

/// What a sync starts with: nothing for a namespace not being deleted or
/// no longer held by [`FINALIZER`], else its content's deletion (its phase
/// made Terminating first, if it is not).
pub fn start(namespace: &Namespace) -> Vec<Action> {
    let held = namespace
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if namespace.metadata.deletion_timestamp.is_none() || !held {
        return Vec::new();
    }
    let terminating =
        namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    let mut actions = Vec::new();
    if !terminating {
        actions.push(Action::MarkTerminating);
    }
    actions.push(Action::DeleteContent);
    actions
}

/// How long the namespace's pods may still take, `elapsed` seconds after
/// the namespace's deletion (upstream's estimateGracefulTermination): the
/// longest grace period of the pods not finished, or 0 once it has passed.
pub fn pod_estimate(pods: &[Pod], elapsed: i64) -> i64 {
    let estimate = pods
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter_map(|p| p.spec.as_ref()?.termination_grace_period_seconds)
        .max()
        .unwrap_or(0);
    if elapsed >= estimate {
        0
    } else {
        estimate
    }
}

/// What is left of one kind after its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// Nothing, or nothing that can be checked.
    Nothing,
    /// Items remain that are expected to go within this many seconds.
    Waiting(i64),
    /// Items remain that nothing explains.
    Unexpected,
}

/// Upstream's verdict on one kind (deleteAllContentForGroupVersionResource):
/// `estimate` for its items, and the finalizers of each item still there.
pub fn left_of_kind(estimate: i64, remaining: &[Vec<String>]) -> Left {
    if remaining.is_empty() {
        Left::Nothing
    } else if estimate > 0 {
        Left::Waiting(estimate)
    } else if remaining.iter().any(|f| !f.is_empty()) {
        Left::Waiting(FINALIZER_ESTIMATE)
    } else {
        Left::Unexpected
    }
}

/// The end of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Remove the finalizer: the namespace is empty.
    Finalize,
    /// Come back after this long.
    WaitFor(Duration),
    /// These kinds (plurals) keep items for no known reason.
    Unexpected(Vec<String>),
}

/// What follows the deletion of every kind, from what each left: the
/// finalizer goes once nothing is left, else the namespace waits half the
/// longest estimate and a second (as upstream's worker requeues it).
pub fn finish(left: &[(String, Left)]) -> Outcome {
    let unexpected: Vec<String> = left
        .iter()
        .filter(|(_, l)| *l == Left::Unexpected)
        .map(|(kind, _)| kind.clone())
        .collect();
    if !unexpected.is_empty() {
        return Outcome::Unexpected(unexpected);
    }
    let estimate = left
        .iter()
        .filter_map(|(_, l)| match l {
            Left::Waiting(seconds) => Some(*seconds),
            _ => None,
        })
        .max();
    match estimate {
        Some(seconds) => Outcome::WaitFor(Duration::from_secs((seconds / 2 + 1) as u64)),
        None => Outcome::Finalize,
    }
}

/// A failed namespace sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// Items remain that should have gone.
    #[error("unexpected items still remain in namespace: {namespace} for gvr: {kinds:?}")]
    Remaining {
        /// The namespace.
        namespace: String,
        /// The kinds that keep items.
        kinds: Vec<String>,
    },
}

struct Controller {
    client: Client,
    namespaces: Informer<Namespace>,
    queue: WorkQueue,
}

/// Runs the namespace controller. Its event source is the Namespace
/// informer of the process's shared `informers`: a namespace being deleted
/// is queued. It writes through `client`.
pub fn run(client: Client, informers: &Informers) -> impl Future<Output = ()> + Send + 'static {
    let namespaces = informers.get::<Namespace>();
    // Upstream's namespace queue: retried at least every minute.
    let queue = WorkQueue::with_limiter(RateLimiter::new(
        Duration::from_millis(5),
        Duration::from_secs(60),
        10.0,
        100,
    ));
    enqueue(&namespaces, queue.clone(), |ns| {
        ns.metadata
            .deletion_timestamp
            .is_some()
            .then(|| ns.name_any())
    });
    let controller = Arc::new(Controller {
        client,
        namespaces: namespaces.clone(),
        queue: queue.clone(),
    });
    async move {
        namespaces.wait_synced().await;
        spawn_workers(controller, queue, 2, NAME);
    }
}

impl crate::workqueue::Sync for Controller {
    type Error = Error;

    async fn sync(&self, name: &str) -> Result<(), Error> {
        let Some(namespace) = self.namespaces.get("", name) else {
            return Ok(());
        };
        for action in start(&namespace) {
            match action {
                Action::MarkTerminating => self.mark_terminating(name).await?,
                Action::DeleteContent => {
                    let deleted_at = namespace
                        .metadata
                        .deletion_timestamp
                        .as_ref()
                        .map_or_else(jiff::Timestamp::now, |t| t.0);
                    let left = self.delete_content(name, deleted_at).await?;
                    match finish(&left) {
                        Outcome::Finalize => self.finalize(name).await?,
                        Outcome::WaitFor(delay) => self.queue.add_after(name.to_owned(), delay),
                        Outcome::Unexpected(kinds) => {
                            return Err(Error::Remaining {
                                namespace: name.to_owned(),
                                kinds,
                            })
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Controller {
    async fn mark_terminating(&self, name: &str) -> Result<(), kube::Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let patch = json!({"status": {"phase": "Terminating"}});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Deletes every namespaced kind's content; answers what each left.
    async fn delete_content(
        &self,
        namespace: &str,
        deleted_at: jiff::Timestamp,
    ) -> Result<Vec<(String, Left)>, kube::Error> {
        let elapsed = jiff::Timestamp::now().duration_since(deleted_at).as_secs();
        let mut left = Vec::new();
        for kind in namespaced_kinds(&self.client).await? {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &kind.resource);
            let estimate = if kind.resource.group.is_empty() && kind.resource.plural == "pods" {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                pod_estimate(&pods.list(&ListParams::default()).await?.items, elapsed)
            } else {
                0
            };
            delete_all(&api, &kind).await?;
            let remaining: Vec<Vec<String>> = if kind.list {
                api.list_metadata(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .map(|item| item.finalizers().to_vec())
                    .collect()
            } else {
                Vec::new()
            };
            left.push((kind.resource.plural, left_of_kind(estimate, &remaining)));
        }
        Ok(left)
    }

    /// Removes the `kubernetes` finalizer from the namespace's spec.
    async fn finalize(&self, name: &str) -> Result<(), kube::Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut namespace = match api.get(name).await {
            Ok(namespace) => namespace,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        };
        if let Some(finalizers) = namespace.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
            finalizers.retain(|f| f != FINALIZER);
        }
        match api
            .replace_subresource("finalize", name, &PostParams::default(), &namespace)
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            other => other.map(|_: Namespace| ()),
        }
    }
}

/// Deletes every item of one kind in the namespace: by collection where
/// it is served, else one by one.
async fn delete_all(api: &Api<DynamicObject>, kind: &Kind) -> Result<(), kube::Error> {
    let background = DeleteParams::background();
    let unsupported =
        |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 405);
    if kind.collection {
        match api
            .delete_collection(&background, &ListParams::default())
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if !kind.list {
        return Ok(());
    }
    for item in api.list_metadata(&ListParams::default()).await?.items {
        match api.delete(&item.name_any(), &background).await {
            Err(e) if !unsupported(&e) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
