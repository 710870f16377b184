//! The namespace controller: a namespace being deleted (phase Terminating,
//! held by the `kubernetes` finalizer in its spec) has everything in it
//! deleted, kind by kind, and once nothing is left, the finalizer removed
//! through `namespaces/NAME/finalize`, which lets it go.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use kube::{Client, ResourceExt};
use skiff_runtime::Informers;

use crate::workqueue::WorkQueue;

/// The finalizer the namespace controller serves.
pub const FINALIZER: &str = "kubernetes";

/// The namespaced kinds the server serves that can be deleted by
/// collection, from discovery.
async fn namespaced_kinds(client: &Client) -> Result<Vec<ApiResource>, kube::Error> {
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
            if r.namespaced
                && !r.name.contains('/')
                && r.verbs.iter().any(|v| v == "deletecollection")
            {
                let gvk = GroupVersionKind::gvk(&group, &version, &r.kind);
                kinds.push(ApiResource::from_gvk_with_plural(&gvk, &r.name));
            }
        }
    }
    Ok(kinds)
}

/// Runs the namespace controller, hearing of Namespaces from the
/// process's shared `informers`, writing through `client`.
pub fn run(client: Client, informers: &Informers) -> impl Future<Output = ()> + Send + 'static {
    let namespaces = informers.get::<Namespace>();
    let queue = WorkQueue::default();
    crate::workqueue::enqueue(&namespaces, queue.clone(), |ns| {
        ns.metadata
            .deletion_timestamp
            .is_some()
            .then(|| ns.name_any())
    });
    drain(client, queue)
}

async fn drain(client: Client, queue: WorkQueue) {
    let mut kinds = Vec::new();
    loop {
        let name = queue.next().await;
        if kinds.is_empty() {
            kinds = namespaced_kinds(&client).await.unwrap_or_default();
        }
        match empty(&client, &kinds, &name).await {
            Ok(true) => {
                if let Err(e) = finalize(&client, &name).await {
                    eprintln!("namespace-controller: {name}: {e}");
                    queue.add_after(name.clone(), Duration::from_secs(1));
                }
            }
            Ok(false) => queue.add_after(name.clone(), Duration::from_millis(500)),
            Err(e) => {
                eprintln!("namespace-controller: {name}: {e}");
                queue.add_after(name.clone(), Duration::from_secs(1));
            }
        }
        queue.done(&name);
    }
}

/// Deletes what is left in the namespace; answers whether it was empty.
async fn empty(
    client: &Client,
    kinds: &[ApiResource],
    namespace: &str,
) -> Result<bool, kube::Error> {
    let mut empty = true;
    for kind in kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, kind);
        let left = api.list(&ListParams::default().limit(1)).await?;
        if left.items.is_empty() {
            continue;
        }
        empty = false;
        api.delete_collection(&DeleteParams::background(), &ListParams::default())
            .await?;
    }
    Ok(empty)
}

/// Removes the `kubernetes` finalizer from the namespace's spec.
async fn finalize(client: &Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut namespace = match api.get(name).await {
        Ok(namespace) => namespace,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e),
    };
    if let Some(spec) = namespace.spec.as_mut() {
        if let Some(finalizers) = spec.finalizers.as_mut() {
            finalizers.retain(|f| f != FINALIZER);
        }
    }
    api.replace_subresource("finalize", name, &PostParams::default(), &namespace)
        .await
        .map(|_: Namespace| ())
}
