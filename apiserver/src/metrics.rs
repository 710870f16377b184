//! /metrics in the Prometheus text format: requests by verb, resource and
//! code, a latency histogram per verb (watches excluded: they are long),
//! the open watches, and the store's revisions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The histogram's upper bounds, in seconds (upstream's apiserver buckets,
/// trimmed to what a local cluster sees).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What the apiserver counts.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Watches being served now.
    pub open_watches: AtomicI64,
    /// Watches being served now, by resource (plural).
    open_by_resource: Mutex<BTreeMap<&'static str, i64>>,
}

/// Decrements the open-watch gauges when a watch stream ends.
pub struct WatchGuard(pub Arc<Metrics>, &'static str);

impl WatchGuard {
    /// Counts one more open watch of `resource` until the guard is dropped.
    pub fn new(metrics: Arc<Metrics>, resource: &'static str) -> Self {
        metrics.open_watches.fetch_add(1, Ordering::Relaxed);
        *metrics
            .open_by_resource
            .lock()
            .expect("metrics lock")
            .entry(resource)
            .or_default() += 1;
        Self(metrics, resource)
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::Relaxed);
        let mut open = self.0.open_by_resource.lock().expect("metrics lock");
        if let Some(n) = open.get_mut(self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(self.1);
            }
        }
    }
}

/// The Kubernetes verb and resource of a request (`get`, `list`, `watch`,
/// ...; `""` for paths that are not resources).
pub fn classify(
    method: &Method,
    query: &str,
    target: Option<&crate::path::Target>,
) -> (&'static str, String) {
    let Some(target) = target else {
        return (
            if method == Method::GET {
                "get"
            } else {
                "other"
            },
            String::new(),
        );
    };
    let watching = query
        .split('&')
        .any(|p| p == "watch=1" || p == "watch=true");
    let named = target.name.is_some();
    let verb = match (method.as_str(), named) {
        ("GET", false) if watching => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    };
    let resource = match target.subresource {
        Some(sub) => format!("{}/{}", target.resource.plural, sub.name()),
        None => target.resource.plural.to_owned(),
    };
    (verb, resource)
}

impl Metrics {
    fn record(&self, verb: &str, resource: String, code: u16, started: Instant) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((verb.to_owned(), resource, code))
            .or_default() += 1;
        if verb == "watch" {
            return;
        }
        let seconds = started.elapsed().as_secs_f64();
        let mut latency = self.latency.lock().expect("metrics lock");
        let histogram = latency.entry(verb.to_owned()).or_default();
        for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// The text exposition.
    pub fn render(&self, revision: u64, compacted: u64, stats: skiff_store::Stats) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), count) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {count}");
        }
        out.push_str("# HELP apiserver_request_duration_seconds Request latency by verb (watches excluded).\n# TYPE apiserver_request_duration_seconds histogram\n");
        for (verb, histogram) in self.latency.lock().expect("metrics lock").iter() {
            for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter()) {
                let _ = writeln!(out, "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{verb=\"{verb}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{verb=\"{verb}\"}} {}",
                histogram.count
            );
        }
        let watches = self.open_watches.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP apiserver_longrunning_requests Watches being served, in all and by resource.\n# TYPE apiserver_longrunning_requests gauge\napiserver_longrunning_requests{{verb=\"watch\"}} {watches}");
        for (resource, open) in self.open_by_resource.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "apiserver_longrunning_requests{{verb=\"watch\",resource=\"{resource}\"}} {open}"
            );
        }
        let _ = writeln!(out, "# HELP skiff_store_revision The store's current revision.\n# TYPE skiff_store_revision gauge\nskiff_store_revision {revision}");
        let _ = writeln!(out, "# HELP skiff_store_compacted_revision The revision history is compacted up to.\n# TYPE skiff_store_compacted_revision gauge\nskiff_store_compacted_revision {compacted}");
        let gauges = [
            (
                "skiff_store_objects",
                "Live objects in the store.",
                stats.objects,
            ),
            (
                "skiff_store_object_bytes",
                "Bytes of the live objects' values.",
                stats.object_bytes,
            ),
            (
                "skiff_store_history_events",
                "Events kept in the watch history.",
                stats.history_events,
            ),
            (
                "skiff_store_disk_bytes",
                "Bytes the store takes on disk.",
                stats.disk_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

/// Counts every request once its response is ready, and adds mutating ones
/// to the audit trail.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let time = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    // The path is parsed once here, for the metrics and the audit record.
    let target = crate::path::parse(&state.registry, request.uri().path());
    let (verb, resource) = classify(
        request.method(),
        request.uri().query().unwrap_or_default(),
        target.as_ref(),
    );
    let target = target.map(|t| (t.namespace, t.name)).unwrap_or_default();
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    let code = response.status().as_u16();
    let user = response
        .extensions()
        .get::<crate::auth::User>()
        .map_or_else(
            || crate::auth::ANONYMOUS.to_owned(),
            crate::auth::User::name,
        );
    if crate::audit::recorded(verb, &response) {
        let written = response
            .extensions()
            .get::<crate::audit::Written>()
            .cloned()
            .unwrap_or_default();
        state.audit.push(crate::audit::Record {
            seq: 0,
            time,
            user,
            user_agent,
            verb: verb.to_owned(),
            resource: resource.clone(),
            namespace: target.0.or(written.namespace),
            name: target.1.or(written.name),
            code,
            resource_version: written.resource_version.filter(|_| code < 300),
            latency_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        });
    }
    state.metrics.record(verb, resource, code, started);
    response
}

/// `GET /metrics`.
pub async fn serve(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(
        state.store.current_revision(),
        state.store.compacted_revision(),
        state.store.stats(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_as_kubernetes_verbs() {
        let registry = skiff_api::Registry::builtin();
        let c = |m: Method, p: &str, q: &str| {
            classify(&m, q, crate::path::parse(&registry, p).as_ref())
        };
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/default/pods", ""),
            ("list", "pods".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/pods", "watch=1"),
            ("watch", "pods".into())
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/default/pods/p", ""),
            ("get", "pods".into())
        );
        assert_eq!(
            c(
                Method::POST,
                "/api/v1/namespaces/default/pods/p/binding",
                ""
            ),
            ("create", "pods/binding".into())
        );
        assert_eq!(
            c(Method::DELETE, "/apis/apps/v1/namespaces/x/deployments", ""),
            ("deletecollection", "deployments".into())
        );
        assert_eq!(c(Method::GET, "/healthz", ""), ("get", String::new()));
    }

    #[test]
    fn the_exposition_has_counters_histograms_and_gauges() {
        let metrics = Metrics::default();
        metrics.record("create", "pods".into(), 201, Instant::now());
        metrics.record("watch", "pods".into(), 200, Instant::now());
        let metrics = Arc::new(metrics);
        let _watch = WatchGuard::new(metrics.clone(), "pods");
        let ended = WatchGuard::new(metrics.clone(), "nodes");
        drop(ended);
        let text = metrics.render(
            42,
            7,
            skiff_store::Stats {
                objects: 3,
                object_bytes: 300,
                history_events: 5,
                disk_bytes: 4096,
            },
        );
        assert!(text
            .contains("apiserver_request_total{verb=\"create\",resource=\"pods\",code=\"201\"} 1"));
        assert!(text.contains("apiserver_request_duration_seconds_count{verb=\"create\"} 1"));
        assert!(!text.contains("apiserver_request_duration_seconds_count{verb=\"watch\"}"));
        assert!(text.contains("skiff_store_revision 42"));
        assert!(text.contains("apiserver_longrunning_requests{verb=\"watch\"} 1\n"));
        assert!(
            text.contains("apiserver_longrunning_requests{verb=\"watch\",resource=\"pods\"} 1\n")
        );
        assert!(!text.contains("resource=\"nodes\"}"), "ended watches go");
        assert!(
            text.contains("\nskiff_store_objects 3\n")
                && text.contains("\nskiff_store_disk_bytes 4096\n")
        );
    }
}
