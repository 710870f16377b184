//! Skiff's apiserver: the Kubernetes REST API over the store.
//!
//! [`router`] builds the whole API as an axum `Router`: discovery, the REST
//! verbs of every kind in the registry (one set of handlers, driven by the
//! registry's data), watch streams, and Kubernetes `Status` errors.

mod audit;
mod auth;
mod discovery;
mod error;
mod metrics;
mod object;
mod path;
mod rest;
mod table;
mod watch;

use std::sync::{Arc, OnceLock};

use axum::routing::get;
use axum::Router;
use skiff_api::openapi::OpenApi;
use skiff_api::protobuf::Decoder;
use skiff_api::Registry;
use skiff_store::Store;

pub use error::{ApiError, Cause};

/// Bodies over this many bytes are refused with 413, as upstream does.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Where objects live.
    pub store: Arc<dyn Store>,
    /// The kinds served.
    pub registry: Arc<Registry>,
    /// The admin bearer token; `None` serves everyone (tests, embedding).
    pub token: Option<Arc<str>>,
    /// The OpenAPI documents, generated on first use (they are only needed
    /// by clients that validate, and generating them costs milliseconds).
    openapi: Arc<OnceLock<OpenApi>>,
    /// The protobuf decoder, likewise built on first use.
    protobuf: Arc<OnceLock<Decoder>>,
    /// Request counts, latencies and open watches, for /metrics.
    metrics: Arc<metrics::Metrics>,
    /// The audit trail of mutating requests.
    audit: Arc<audit::AuditLog>,
}

impl AppState {
    /// State over `store` serving the built-in kinds.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            registry: Arc::new(Registry::builtin()),
            token: None,
            openapi: Arc::new(OnceLock::new()),
            protobuf: Arc::new(OnceLock::new()),
            metrics: Arc::default(),
            audit: Arc::default(),
        }
    }

    /// The OpenAPI documents of the served kinds.
    pub fn openapi(&self) -> &OpenApi {
        self.openapi.get_or_init(|| OpenApi::build(&self.registry))
    }

    /// The decoder of protobuf request bodies.
    pub fn protobuf(&self) -> &Decoder {
        self.protobuf.get_or_init(|| Decoder::new(self.openapi()))
    }

    /// Requires `Authorization: Bearer TOKEN` on every request but health
    /// and version.
    pub fn with_token(self, token: &str) -> Self {
        Self {
            token: Some(token.into()),
            ..self
        }
    }
}

/// The namespaces every cluster has from its first start.
pub const DEFAULT_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the default namespaces that do not exist yet.
pub async fn bootstrap(state: &AppState) -> Result<(), ApiError> {
    let namespaces = state
        .registry
        .by_plural("", "v1", "namespaces")
        .expect("namespaces are served");
    for name in DEFAULT_NAMESPACES {
        let namespace = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": object::now(),
                "labels": { "kubernetes.io/metadata.name": name },
            },
            "spec": { "finalizers": ["kubernetes"] },
            "status": { "phase": "Active" },
        });
        match state
            .store
            .create(&namespaces.key(None, name), object::to_stored(&namespace))
            .await
        {
            Ok(_) | Err(skiff_store::StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(ApiError::from_store(e, namespaces, name)),
        }
    }
    Ok(())
}

/// The apiserver's routes: discovery and health at fixed paths, every
/// resource path through one handler that reads the registry.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/healthz", get(discovery::healthy))
        .route("/livez", get(discovery::healthy))
        .route("/readyz", get(discovery::healthy))
        .route("/api", get(discovery::core_versions))
        .route("/apis", get(discovery::groups))
        .route("/api/{version}", get(discovery::core_resources))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/metrics", get(metrics::serve))
        .route("/skiff/v1/audit", get(audit::serve))
        .route("/openapi/v3", get(discovery::openapi_index))
        .route("/openapi/v3/{*path}", get(discovery::openapi_document))
        .fallback(rest::handle)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests;
