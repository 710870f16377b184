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
//! error, retried with the work queue's back-off. After each pass the
//! namespace's conditions say what remains and what failed, as upstream's
//! (`NamespaceContentRemaining`: `Some resources are remaining: pods. has 3
//! resource instances`, `NamespaceFinalizersRemaining`, ...), which
//! `kubectl describe namespace` shows. The decisions ([`start`],
//! [`left_of_kind`], [`finish`], [`pod_estimate`], [`conditions`]) are pure.
//!
//! Upstream also waits five seconds after a namespace's deletion for other
//! apiservers and etcd members to see it; this is one apiserver over one
//! store, so it starts at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
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

/// What one kind's deletion left in a namespace: the finalizers of each
/// item still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remains {
    /// The kind's API group (`""` for the core group).
    pub group: String,
    /// The kind's plural.
    pub plural: String,
    /// Each remaining item's finalizers.
    pub items: Vec<Vec<String>>,
}

/// The condition types the deletion maintains, in upstream's order, with
/// the reason and message of each when all is well (status `False`).
const CONDITIONS: [(&str, &str, &str); 5] = [
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        "NamespaceContentRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        "NamespaceFinalizersRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
];

/// The namespace's conditions after a deletion pass that left `remains`
/// and failed to delete with `failures` (upstream's
/// namespaceConditionUpdater): each maintained type `True` with what is
/// wrong, or `False` with its all-is-well message; a condition's
/// `lastTransitionTime` moves only when its status does. `None` when
/// nothing changed.
pub fn conditions(
    old: &[NamespaceCondition],
    remains: &[Remains],
    failures: &[String],
    now: &Time,
) -> Option<Vec<NamespaceCondition>> {
    let mut resources: Vec<String> = remains
        .iter()
        .filter(|r| !r.items.is_empty())
        .map(|r| {
            let count = r.items.len();
            format!("{}.{} has {count} resource instances", r.plural, r.group)
        })
        .collect();
    resources.sort();
    let mut finalizers: BTreeMap<&str, usize> = BTreeMap::new();
    for finalizer in remains.iter().flat_map(|r| &r.items).flatten() {
        *finalizers.entry(finalizer).or_default() += 1;
    }
    let finalizers: Vec<String> = finalizers
        .iter()
        .map(|(finalizer, count)| format!("{finalizer} in {count} resource instances"))
        .collect();
    let mut failures = failures.to_vec();
    failures.sort();
    let failing = |kind: &str| -> Option<(&'static str, String)> {
        match kind {
            "NamespaceDeletionContentFailure" if !failures.is_empty() => Some((
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    failures.len(),
                    failures.join(", ")
                ),
            )),
            "NamespaceContentRemaining" if !resources.is_empty() => Some((
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", resources.join(", ")),
            )),
            "NamespaceFinalizersRemaining" if !finalizers.is_empty() => Some((
                "SomeFinalizerRemain",
                format!("Some finalizers are remaining: {}", finalizers.join(", ")),
            )),
            _ => None,
        }
    };
    let mut next = old.to_vec();
    let mut changed = false;
    for (kind, ok_reason, ok_message) in CONDITIONS {
        let (status, reason, message) = match failing(kind) {
            Some((reason, message)) => ("True", reason, message),
            None => ("False", ok_reason, ok_message.to_owned()),
        };
        let wanted = NamespaceCondition {
            type_: kind.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message),
            last_transition_time: Some(now.clone()),
        };
        match next.iter_mut().find(|c| c.type_ == kind) {
            None => {
                next.push(wanted);
                changed = true;
            }
            Some(old)
                if (&old.status, &old.reason, &old.message)
                    != (&wanted.status, &wanted.reason, &wanted.message) =>
            {
                if old.status != wanted.status {
                    old.last_transition_time = wanted.last_transition_time;
                }
                old.status = wanted.status;
                old.reason = wanted.reason;
                old.message = wanted.message;
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed.then_some(next)
}

/// A failed namespace sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// A kind's content could not be deleted (recorded in the namespace's
    /// `NamespaceDeletionContentFailure` condition).
    #[error("{0}")]
    Content(String),
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
                    let left = self.delete_content(&namespace, deleted_at).await?;
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

    /// Deletes every namespaced kind's content, then records in the
    /// namespace's conditions what is left and what failed; answers what
    /// each kind left.
    async fn delete_content(
        &self,
        namespace: &Namespace,
        deleted_at: jiff::Timestamp,
    ) -> Result<Vec<(String, Left)>, Error> {
        let name = namespace.name_any();
        let elapsed = jiff::Timestamp::now().duration_since(deleted_at).as_secs();
        let (mut left, mut remains, mut failures) = (Vec::new(), Vec::new(), Vec::new());
        for kind in namespaced_kinds(&self.client).await? {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &name, &kind.resource);
            let estimate = if kind.resource.group.is_empty() && kind.resource.plural == "pods" {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), &name);
                pod_estimate(&pods.list(&ListParams::default()).await?.items, elapsed)
            } else {
                0
            };
            // A kind that fails is recorded, and the others still go.
            if let Err(e) = delete_all(&api, &kind).await {
                failures.push(e.to_string());
                continue;
            }
            let items: Vec<Vec<String>> = if kind.list {
                api.list_metadata(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .map(|item| item.finalizers().to_vec())
                    .collect()
            } else {
                Vec::new()
            };
            left.push((kind.resource.plural.clone(), left_of_kind(estimate, &items)));
            remains.push(Remains {
                group: kind.resource.group,
                plural: kind.resource.plural,
                items,
            });
        }
        let old = namespace
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        if let Some(next) = conditions(old, &remains, &failures, &Time(jiff::Timestamp::now())) {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let patch = json!({"status": {"conditions": next}});
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match failures.into_iter().next() {
            Some(failure) => Err(Error::Content(failure)),
            None => Ok(left),
        }
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
