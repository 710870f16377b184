//! `metrics.k8s.io/v1beta1` (what metrics-server serves, so `kubectl top`
//! works): NodeMetrics and PodMetrics, read on each request from every
//! node agent's usage report (`/skiff/usage` on the kubelet server a Node
//! publishes); a real pod's usage comes from its processes, a simulated
//! one's is what it requests.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::object::{from_stored, now};
use crate::AppState;

/// The group and version.
pub const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// Its discovery resource list.
pub fn resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
        ],
    })
}

/// Every agent's usage report.
async fn reports(state: &AppState) -> Result<Vec<Value>, ApiError> {
    let nodes = state
        .registry
        .by_plural("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("no nodes resource"))?;
    let listed = state
        .store
        .list(&nodes.prefix(None), Default::default())
        .await
        .map_err(|e| ApiError::from_store(e, nodes, ""))?;
    let locations: BTreeSet<String> = listed
        .items
        .iter()
        .filter_map(|o| crate::kubelet::location(&from_stored(o).ok()?).ok())
        .collect();
    let mut reports = Vec::new();
    for location in locations {
        // An agent that does not answer has no figures to give.
        if let Ok(body) = crate::kubelet::fetch(state, &location, "/skiff/usage").await {
            if let Ok(report) = serde_json::from_slice::<Value>(&body) {
                reports.push(report);
            }
        }
    }
    Ok(reports)
}

fn usage(cpu: &Value, memory: &Value) -> Value {
    json!({
        "cpu": format!("{}n", cpu.as_u64().unwrap_or(0)),
        "memory": format!("{}Ki", memory.as_u64().unwrap_or(0) / 1024),
    })
}

fn list(kind: &str, items: Vec<Value>) -> Response {
    Json(json!({"kind": format!("{kind}List"), "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}))
        .into_response()
}

fn node_metrics(node: &Value, at: &str) -> Value {
    json!({
        "kind": "NodeMetrics", "apiVersion": GROUP_VERSION,
        "metadata": {"name": node["name"], "creationTimestamp": at},
        "timestamp": at, "window": "10s",
        "usage": usage(&node["cpu"], &node["memory"]),
    })
}

fn pod_metrics(pod: &Value, at: &str) -> Value {
    let containers: Vec<Value> = pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!({"name": c["name"], "usage": usage(&c["cpu"], &c["memory"])}))
        .collect();
    json!({
        "kind": "PodMetrics", "apiVersion": GROUP_VERSION,
        "metadata": {"name": pod["name"], "namespace": pod["namespace"], "creationTimestamp": at},
        "timestamp": at, "window": "10s",
        "containers": containers,
    })
}

fn not_found(kind: &str, name: &str) -> ApiError {
    let mut error = ApiError::no_route();
    error.message = format!("{kind}.metrics.k8s.io \"{name}\" not found");
    error
}

/// `GET .../nodes`.
pub async fn nodes(State(state): State<AppState>) -> Result<Response, ApiError> {
    let at = now();
    let items = reports(&state)
        .await?
        .iter()
        .flat_map(|r| r["nodes"].as_array().cloned().unwrap_or_default())
        .map(|n| node_metrics(&n, &at))
        .collect();
    Ok(list("NodeMetrics", items))
}

/// `GET .../nodes/NAME`.
pub async fn node(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let at = now();
    reports(&state)
        .await?
        .iter()
        .flat_map(|r| r["nodes"].as_array().cloned().unwrap_or_default())
        .find(|n| n["name"] == name.as_str())
        .map(|n| Json(node_metrics(&n, &at)).into_response())
        .ok_or_else(|| not_found("nodes", &name))
}

async fn pod_items(state: &AppState, namespace: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let at = now();
    Ok(reports(state)
        .await?
        .iter()
        .flat_map(|r| r["pods"].as_array().cloned().unwrap_or_default())
        .filter(|p| namespace.is_none_or(|ns| p["namespace"] == ns))
        .map(|p| pod_metrics(&p, &at))
        .collect())
}

/// `GET .../pods` across namespaces.
pub async fn all_pods(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(list("PodMetrics", pod_items(&state, None).await?))
}

/// `GET .../namespaces/NS/pods`.
pub async fn pods(
    State(state): State<AppState>,
    Path(namespace): Path<String>,
) -> Result<Response, ApiError> {
    Ok(list(
        "PodMetrics",
        pod_items(&state, Some(&namespace)).await?,
    ))
}

/// `GET .../namespaces/NS/pods/NAME`.
pub async fn pod(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    pod_items(&state, Some(&namespace))
        .await?
        .into_iter()
        .find(|p| p["metadata"]["name"] == name.as_str())
        .map(|p| Json(p).into_response())
        .ok_or_else(|| not_found("pods", &name))
}
