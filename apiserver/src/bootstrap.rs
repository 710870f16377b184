//! What every cluster has from its first start: the default namespaces,
//! allocations that agree with the Services, and the system Services —
//! `kubernetes` (the apiserver, the first ClusterIP) and `kube-dns` (the
//! cluster DNS, the tenth) — with the Endpoints and EndpointSlice that say
//! where they really listen, as upstream's apiserver keeps them.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};
use skiff_api::ResourceType;
use skiff_store::{Preconditions, StoreError};

use crate::allocator::Owner;
use crate::error::ApiError;
use crate::object::{from_stored, identify, meta_mut, now, to_stored};
use crate::AppState;

/// The namespaces every cluster has from its first start.
pub const DEFAULT_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

fn served<'a>(state: &'a AppState, group: &str, plural: &str) -> &'a ResourceType {
    state
        .registry
        .by_plural(group, "v1", plural)
        .expect("a built-in kind")
}

/// Creates the default namespaces that do not exist yet, and makes the
/// allocations agree with the Services (nothing is in flight before the
/// API serves, so every leak is released).
pub async fn bootstrap(state: &AppState) -> Result<(), ApiError> {
    let namespaces = served(state, "", "namespaces");
    for name in DEFAULT_NAMESPACES {
        let namespace = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": now(),
                "labels": { "kubernetes.io/metadata.name": name },
            },
            "spec": { "finalizers": ["kubernetes"] },
            "status": { "phase": "Active" },
        });
        match state
            .store
            .create(&namespaces.key(None, name), to_stored(&namespace))
            .await
        {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(ApiError::from_store(e, namespaces, name)),
        }
    }
    let (recorded, released) = state
        .allocator
        .repair(served(state, "", "services"), Duration::ZERO)
        .await?;
    if recorded + released > 0 {
        tracing::info!(recorded, released, "service allocations repaired");
    }
    Ok(())
}

/// Repairs the allocations every `every`, releasing leaks older than a
/// minute (a create in flight holds its values for milliseconds).
pub async fn repair_allocations(state: AppState, every: Duration) {
    let services = served(&state, "", "services").clone();
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = state
            .allocator
            .repair(&services, Duration::from_secs(60))
            .await
        {
            tracing::warn!(error = %e, "the allocation repair failed");
        }
    }
}

/// A Service the cluster itself provides, backed by an address outside
/// the pod network (so without a selector).
#[derive(Debug, Clone)]
pub struct SystemService<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its labels.
    pub labels: Value,
    /// Which ClusterIP of the range it takes (0: the first).
    pub ip_index: u32,
    /// Its ports: (name, port, protocol).
    pub ports: &'a [(&'a str, u16, &'a str)],
    /// Where it really listens.
    pub address: IpAddr,
    /// The port it really listens on.
    pub target_port: u16,
}

/// Publishes each of `services`; one that cannot be (a range too small
/// for it, an address a user took) is reported and the rest still are.
pub async fn publish_all(state: &AppState, services: &[SystemService<'_>]) {
    for service in services {
        if let Err(e) = publish_service(state, service).await {
            tracing::warn!(service = service.name, error = %e, "cannot publish a system Service");
        }
    }
}

/// Publishes `services` again every `every`, as upstream's apiserver
/// keeps reconciling the `kubernetes` Service: one deleted by hand comes
/// back, and an unchanged one costs reads, not writes. A change of where
/// they listen is published at once.
pub async fn keep_published(
    state: AppState,
    mut services: tokio::sync::watch::Receiver<Vec<SystemService<'static>>>,
    every: Duration,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = services.changed() => {
                if changed.is_err() {
                    // Nobody moves them any more: keep them as they are.
                    services.mark_unchanged();
                    std::future::pending::<()>().await;
                }
            }
        }
        let now = services.borrow_and_update().clone();
        publish_all(&state, &now).await;
    }
}

/// Makes sure `service` exists with its ClusterIP and ports, and writes
/// its Endpoints and EndpointSlice to where it listens now.
pub async fn publish_service(
    state: &AppState,
    service: &SystemService<'_>,
) -> Result<(), ApiError> {
    let ports: Vec<Value> = service
        .ports
        .iter()
        .map(|(name, port, protocol)| {
            json!({"name": name, "port": port, "protocol": protocol, "targetPort": service.target_port})
        })
        .collect();
    let endpoint_ports: Vec<Value> = service
        .ports
        .iter()
        .map(|(name, _, protocol)| json!({"name": name, "port": service.target_port, "protocol": protocol}))
        .collect();
    let ip = state
        .allocator
        .ranges()
        .cidr
        .ip(service.ip_index)
        .to_string();
    let services = served(state, "", "services");
    let mut object = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service.name, "namespace": service.namespace, "labels": service.labels},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": ports},
    });
    services.strategy.defaults(&mut object);
    let key = services.key(Some(service.namespace), service.name);
    let existing = match state.store.get(&key).await {
        Ok(found) => Some(from_stored(&found)?),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(ApiError::from_store(e, services, service.name)),
    };
    match existing {
        Some(current) if current["spec"]["ports"] == object["spec"]["ports"] => {}
        Some(_) => {
            // Its ports follow where it listens now; the rest is kept.
            let update = |stored: &skiff_store::Object| -> skiff_store::Result<bytes::Bytes> {
                let mut current = from_stored(stored)?;
                current["spec"]["ports"] = object["spec"]["ports"].clone();
                Ok(to_stored(&current))
            };
            state
                .store
                .guaranteed_update(&key, Preconditions::default(), Box::new(update))
                .await
                .map_err(|e| ApiError::from_store(e, services, service.name))?;
        }
        None => {
            let owner = Owner {
                namespace: service.namespace,
                name: service.name,
            };
            identify(meta_mut(&mut object));
            let reserved = state
                .allocator
                .settle(&mut object, services, &owner, false)
                .await?;
            if let Err(e) = state.store.create(&key, to_stored(&object)).await {
                state.allocator.release(&reserved).await;
                if !matches!(e, StoreError::AlreadyExists { .. }) {
                    return Err(ApiError::from_store(e, services, service.name));
                }
            }
        }
    }
    let address = service.address.to_string();
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": service.name, "namespace": service.namespace, "labels": service.labels},
        "subsets": [{"addresses": [{"ip": address}], "ports": endpoint_ports}],
    });
    put(state, served(state, "", "endpoints"), endpoints).await?;
    let mut slice_labels = service.labels.clone();
    slice_labels["kubernetes.io/service-name"] = json!(service.name);
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": service.name, "namespace": service.namespace, "labels": slice_labels},
        "addressType": if service.address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [address], "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": endpoint_ports,
    });
    put(
        state,
        served(state, "discovery.k8s.io", "endpointslices"),
        slice,
    )
    .await
}

/// Creates `object`, or replaces all but the identity of the stored one
/// when it differs.
async fn put(state: &AppState, resource: &ResourceType, mut object: Value) -> Result<(), ApiError> {
    let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = resource.key(namespace.as_deref(), &name);
    let update = |stored: &skiff_store::Object| -> skiff_store::Result<bytes::Bytes> {
        let current = from_stored(stored)?;
        let mut next = object.clone();
        for kept in ["uid", "creationTimestamp"] {
            meta_mut(&mut next).insert(kept.into(), current["metadata"][kept].clone());
        }
        next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        Ok(match next == current {
            true => stored.value.clone(),
            false => to_stored(&next),
        })
    };
    match state
        .store
        .guaranteed_update(&key, Preconditions::default(), Box::new(update))
        .await
    {
        Ok(_) => return Ok(()),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(ApiError::from_store(e, resource, &name)),
    }
    identify(meta_mut(&mut object));
    match state.store.create(&key, to_stored(&object)).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(ApiError::from_store(e, resource, &name)),
    }
}
