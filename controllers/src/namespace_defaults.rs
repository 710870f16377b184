//! What every namespace holds, made as it is and made again if deleted or
//! changed: its `default` ServiceAccount (upstream's
//! serviceaccounts-controller) and the `kube-root-ca.crt` ConfigMap with
//! the cluster's CA (upstream's root-ca-cert-publisher), which pods'
//! mounted credentials read. One controller shape, two instances; the
//! decision, [`decide`], is pure.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use skiff_runtime::{Informer, Informers};

use crate::workqueue::{enqueue, spawn_workers, WorkQueue};

/// The ConfigMap's description, as upstream's publisher writes it.
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// What a namespace's object needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: it is as it should be, or the namespace is gone or going.
    Nothing,
    /// To be made.
    Create,
    /// To be set back to what it should hold.
    Update,
}

/// What the namespace's object needs: made in a live namespace where it
/// is missing, set back where it differs from what it should hold.
pub fn decide<K>(
    namespace: Option<&Namespace>,
    existing: Option<&K>,
    holds: impl Fn(&K) -> bool,
) -> Action {
    let live = namespace.is_some_and(|n| {
        n.metadata.deletion_timestamp.is_none()
            && n.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
    });
    match (live, existing) {
        (false, _) => Action::Nothing,
        (true, None) => Action::Create,
        (true, Some(object)) if holds(object) => Action::Nothing,
        (true, Some(_)) => Action::Update,
    }
}

/// One kind of object every namespace gets.
struct Controller<K: Resource + Clone + Send + Sync + 'static> {
    name: String,
    client: Client,
    namespaces: Informer<Namespace>,
    objects: Informer<K>,
    /// The object a namespace should hold.
    desired: K,
    /// Whether an existing one holds what it should.
    holds: fn(&K, &K) -> bool,
}

/// A namespaced kind the controller can keep.
trait Kept:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Kept for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

impl<K: Kept> crate::workqueue::Sync for Controller<K> {
    type Error = kube::Error;

    async fn sync(&self, namespace: &str) -> Result<(), kube::Error> {
        let existing = self.objects.get(namespace, &self.name);
        let action = decide(
            self.namespaces.get("", namespace).as_deref(),
            existing.as_deref(),
            |o| (self.holds)(o, &self.desired),
        );
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let result = match action {
            Action::Nothing => return Ok(()),
            Action::Create => api
                .create(&PostParams::default(), &self.desired)
                .await
                .map(drop),
            Action::Update => api
                .patch(
                    &self.name,
                    &PatchParams::default(),
                    &Patch::Merge(&self.desired),
                )
                .await
                .map(drop),
        };
        match result {
            // Made meanwhile, or the namespace began to go: the next
            // event says what is left to do.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 || e.code == 404 => Ok(()),
            other => other,
        }
    }
}

fn start<K: Kept>(
    component: &'static str,
    client: Client,
    informers: &Informers,
    desired: K,
    holds: fn(&K, &K) -> bool,
) -> impl Future<Output = ()> + Send + 'static {
    let namespaces = informers.get::<Namespace>();
    let objects = informers.get::<K>();
    async move {
        let name = desired.name_any();
        let queue = WorkQueue::default();
        enqueue(&namespaces, queue.clone(), |n| Some(n.name_any()));
        let wanted = name.clone();
        enqueue(&objects, queue.clone(), move |o| {
            (o.name_any() == wanted).then(|| o.namespace().unwrap_or_default())
        });
        namespaces.wait_synced().await;
        objects.wait_synced().await;
        let controller = Arc::new(Controller {
            name,
            client,
            namespaces,
            objects,
            desired,
            holds,
        });
        spawn_workers(controller, queue, 1, component);
    }
}

fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

/// Runs the serviceaccounts controller: a `default` ServiceAccount in
/// every namespace.
pub fn service_accounts(
    client: Client,
    informers: &Informers,
) -> impl Future<Output = ()> + Send + 'static {
    let account = ServiceAccount {
        metadata: named("default"),
        ..ServiceAccount::default()
    };
    start(
        "serviceaccount-controller",
        client,
        informers,
        account,
        |_, _| true,
    )
}

/// The `kube-root-ca.crt` ConfigMap with the CA `ca_pem`.
pub fn root_ca(ca_pem: &str) -> ConfigMap {
    let mut metadata = named("kube-root-ca.crt");
    metadata.annotations = Some(
        [(
            "kubernetes.io/description".to_owned(),
            ROOT_CA_DESCRIPTION.to_owned(),
        )]
        .into(),
    );
    ConfigMap {
        metadata,
        data: Some([("ca.crt".to_owned(), ca_pem.to_owned())].into()),
        ..ConfigMap::default()
    }
}

/// Runs the root CA publisher: `kube-root-ca.crt` holding `ca_pem` in
/// every namespace.
pub fn root_ca_publisher(
    client: Client,
    informers: &Informers,
    ca_pem: &str,
) -> impl Future<Output = ()> + Send + 'static {
    start(
        "root-ca-cert-publisher",
        client,
        informers,
        root_ca(ca_pem),
        |existing, desired| existing.data == desired.data,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn namespace(phase: &str, deleting: bool) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                deletion_timestamp: deleting.then(|| Time("2026-12-02T00:00:00Z".parse().unwrap())),
                ..ObjectMeta::default()
            },
            status: Some(NamespaceStatus {
                phase: Some(phase.into()),
                ..NamespaceStatus::default()
            }),
            ..Namespace::default()
        }
    }

    #[test]
    fn live_namespaces_get_what_they_miss_and_lose_what_was_changed() {
        let ca = root_ca("PEM");
        let changed = root_ca("other");
        let holds = |o: &ConfigMap| o.data == ca.data;
        let active = namespace("Active", false);
        assert_eq!(decide(Some(&active), None, holds), Action::Create);
        assert_eq!(decide(Some(&active), Some(&ca), holds), Action::Nothing);
        assert_eq!(decide(Some(&active), Some(&changed), holds), Action::Update);
        for gone in [namespace("Terminating", false), namespace("Active", true)] {
            assert_eq!(decide(Some(&gone), None, holds), Action::Nothing);
        }
        assert_eq!(decide::<ConfigMap>(None, None, holds), Action::Nothing);
        assert_eq!(ca.data.unwrap()["ca.crt"], "PEM");
    }
}
