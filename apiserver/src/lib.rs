//! Skiff's apiserver: the Kubernetes REST API over the store.
//!
//! [`router`] builds the whole API as an axum `Router`: discovery, the REST
//! verbs of every kind in the registry (one set of handlers, driven by the
//! registry's data), watch streams, and Kubernetes `Status` errors.

mod allocator;
mod audit;
mod auth;
mod bootstrap;
mod discovery;
mod error;
mod kubelet;
mod metrics;
mod object;
mod path;
mod resource_metrics;
mod rest;
mod service_accounts;
mod table;
mod tokens;
mod watch;
mod wire;

use std::sync::{Arc, OnceLock};

use axum::routing::get;
use axum::Router;
use skiff_api::openapi::OpenApi;
use skiff_api::protobuf::Decoder;
use skiff_api::Registry;
use skiff_store::Store;
use tower_http::catch_panic::CatchPanicLayer;

pub use allocator::{Allocator, ServiceRanges};
pub use bootstrap::{
    bootstrap, keep_published, publish_all, publish_service, repair_allocations, SystemService,
    DEFAULT_NAMESPACES,
};
pub use error::{ApiError, Cause};
pub use service_accounts::{MOUNT_PATH, ROOT_CA};
pub use wire::prepare as prepare_types;

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
    /// The ClusterIP and node-port allocators.
    pub allocator: Arc<Allocator>,
    /// What signs and checks service-account tokens; `None` issues none.
    pub tokens: Option<Arc<tokens::Tokens>>,
}

impl AppState {
    /// State over `store` serving the built-in kinds.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let registry = Arc::new(Registry::builtin());
        Self {
            allocator: Arc::new(allocator_for(&store, &registry, ServiceRanges::default())),
            store,
            registry,
            token: None,
            openapi: Arc::new(OnceLock::new()),
            protobuf: Arc::new(OnceLock::new()),
            metrics: Arc::default(),
            audit: Arc::default(),
            tokens: None,
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

    /// Hands out ClusterIPs and node ports from `ranges`.
    pub fn with_service_ranges(self, ranges: ServiceRanges) -> Self {
        Self {
            allocator: Arc::new(allocator_for(&self.store, &self.registry, ranges)),
            ..self
        }
    }

    /// Issues and accepts service-account tokens signed with the P-256
    /// key `private_pem` (PKCS #8), checked with `public_pem`.
    pub fn with_service_account_key(
        self,
        private_pem: &str,
        public_pem: &str,
    ) -> Result<Self, String> {
        Ok(Self {
            tokens: Some(Arc::new(tokens::Tokens::new(private_pem, public_pem)?)),
            ..self
        })
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

fn allocator_for(store: &Arc<dyn Store>, registry: &Registry, ranges: ServiceRanges) -> Allocator {
    let addresses = registry
        .by_plural("networking.k8s.io", "v1", "ipaddresses")
        .expect("IPAddresses are served");
    Allocator::new(store.clone(), ranges, addresses.clone())
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
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes",
            get(resource_metrics::nodes),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes/{name}",
            get(resource_metrics::node),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/pods",
            get(resource_metrics::all_pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
            get(resource_metrics::pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
            get(resource_metrics::pod),
        )
        .route("/metrics", get(metrics::serve))
        .route("/skiff/v1/audit", get(audit::serve))
        .route("/openapi/v3", get(discovery::openapi_index))
        .route("/openapi/v3/{*path}", get(discovery::openapi_document))
        .fallback(rest::handle)
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(wire::indent))
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

/// The last resort for a handler that panics: logged, and answered as
/// kube-apiserver's panic filter answers (WithPanicRecovery in
/// apiserver/pkg/server/filters/wrap.go), as a 500 `Status`.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(panic = what, "a request panicked the apiserver");
    axum::response::IntoResponse::into_response(ApiError::internal(
        "This request caused apiserver to panic. Look in the logs for details.",
    ))
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wire_tests;
