//! Discovery: /version, /api, /apis and the resource lists of each group
//! version, generated from the registry.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use skiff_api::{ResourceType, Subresource};

use crate::error::ApiError;
use crate::AppState;

/// The Kubernetes version whose API Skiff serves.
pub const KUBERNETES_MINOR: &str = "33";

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-skiff.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }))
}

pub async fn healthy() -> &'static str {
    "ok"
}

pub async fn core_versions() -> Json<Value> {
    Json(json!({ "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [] }))
}

pub async fn groups(State(state): State<AppState>) -> Json<Value> {
    let groups: Vec<Value> = state
        .registry
        .groups()
        .into_iter()
        // Served beside the stored kinds, for `kubectl top`.
        .chain([("metrics.k8s.io", "v1beta1")])
        .map(|(group, version)| {
            let gv = json!({ "groupVersion": format!("{group}/{version}"), "version": version });
            json!({ "name": group, "versions": [gv.clone()], "preferredVersion": gv })
        })
        .collect();
    Json(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }))
}

fn entries(resource: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": resource.plural,
        "singularName": resource.singular(),
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": VERBS,
    });
    if !resource.short_names.is_empty() {
        main["shortNames"] = json!(resource.short_names);
    }
    if !resource.categories.is_empty() {
        main["categories"] = json!(resource.categories);
    }
    let mut entries = vec![main];
    for sub in resource.subresources {
        let name = format!("{}/{}", resource.plural, sub.name());
        let mut entry =
            json!({ "name": name, "singularName": "", "namespaced": resource.namespaced });
        let (kind, verbs): (&str, &[&str]) = match sub {
            Subresource::Status => (resource.kind, &["get", "patch", "update"]),
            // The object's own kind, as upstream reports these two.
            Subresource::Log => (resource.kind, &["get"]),
            Subresource::Exec => ("PodExecOptions", &["create", "get"]),
            Subresource::Attach => ("PodAttachOptions", &["create", "get"]),
            Subresource::PortForward => ("PodPortForwardOptions", &["create", "get"]),
            Subresource::Finalize => (resource.kind, &["update"]),
            Subresource::Scale => {
                entry["group"] = json!("autoscaling");
                entry["version"] = json!("v1");
                ("Scale", &["get", "patch", "update"])
            }
            Subresource::Binding => ("Binding", &["create"]),
            Subresource::Token => {
                entry["group"] = json!("authentication.k8s.io");
                entry["version"] = json!("v1");
                ("TokenRequest", &["create"])
            }
        };
        entry["kind"] = json!(kind);
        entry["verbs"] = json!(verbs);
        entries.push(entry);
    }
    entries
}

fn resource_list(state: &AppState, group: &str, version: &str) -> Result<Json<Value>, ApiError> {
    if format!("{group}/{version}") == crate::resource_metrics::GROUP_VERSION {
        return Ok(Json(crate::resource_metrics::resources()));
    }
    let resources: Vec<Value> = state
        .registry
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(entries)
        .collect();
    if resources.is_empty() {
        return Err(ApiError::no_route());
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(Json(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })))
}

pub async fn core_resources(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    resource_list(&state, "", &version)
}

pub async fn group_resources(
    State(state): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    resource_list(&state, &group, &version)
}

pub async fn openapi_index(State(state): State<AppState>) -> Json<Value> {
    Json(state.openapi().index())
}

pub async fn openapi_document(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state
        .openapi()
        .document(&path)
        .cloned()
        .map(Json)
        .ok_or_else(ApiError::no_route)
}
