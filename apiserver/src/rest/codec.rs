//! Request bodies in, responses out: every path decodes its body with
//! [`parse_body`] and serializes its answer with [`json_response`], in the
//! shape the client's `Accept` asks for ([`Api::answer`], [`Api::answer_list`]).

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use skiff_api::protobuf;

use super::Api;
use crate::error::ApiError;
use crate::AppState;

/// Serializes `value` as the JSON answer, noting for the audit trail which
/// object it is.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        crate::wire::to_json(value),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(crate::audit::Written::of(value));
    response
}

/// Adds a `Warning` header per warning, as upstream reports them.
pub fn warned(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "'"));
        if let Ok(value) = header::HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// Parses a request body: JSON, YAML, or Kubernetes protobuf (what
/// client-go's typed clients send).
pub fn parse_body(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "application/json" | "*/*" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"))),
        "application/yaml" => serde_saphyr::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid YAML: {e}"))),
        "application/vnd.kubernetes.protobuf" => parse_protobuf(state, body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid protobuf: {e}"))),
        other => Err(ApiError::unsupported_media(format!(
            "the body's content type {other:?} is not supported; send application/json, application/yaml or application/vnd.kubernetes.protobuf"
        ))),
    }
}

/// A protobuf body as JSON, its message decoded by the kind its envelope
/// names.
fn parse_protobuf(state: &AppState, body: &[u8]) -> Result<Value, String> {
    let envelope = protobuf::envelope(body)?;
    let schema = match state
        .registry
        .by_kind(&envelope.api_version, &envelope.kind)
    {
        Some(resource) => resource.schema_name.clone(),
        None if envelope.kind == "DeleteOptions" => {
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into()
        }
        // Subresource bodies (Scale, Binding, Eviction): upstream's names.
        None => {
            let (group, version) = match envelope.api_version.split_once('/') {
                Some((group, version)) => (group.split('.').next().unwrap_or(group), version),
                None => ("core", envelope.api_version.as_str()),
            };
            format!("io.k8s.api.{group}.{version}.{}", envelope.kind)
        }
    };
    let mut object = state.protobuf().decode(&schema, &envelope.raw)?;
    object["apiVersion"] = json!(envelope.api_version);
    object["kind"] = json!(envelope.kind);
    Ok(object)
}

impl Api<'_> {
    /// Answers `object` as the client asked for it: whole, or its
    /// `PartialObjectMetadata`. A dry run's answer is marked so that the
    /// audit trail records no write.
    pub(super) fn answer(&self, code: StatusCode, object: &Value) -> Response {
        let response = match crate::table::metadata_only(self.headers) {
            true => json_response(code, &crate::table::partial(object)),
            false => json_response(code, object),
        };
        self.marked(response)
    }

    /// Answers a list of `items` with `metadata`, as the client asked for
    /// it: the kind's list, or a `PartialObjectMetadataList`.
    pub(super) fn answer_list(&self, metadata: Value, items: Vec<Value>) -> Response {
        let body = match crate::table::metadata_only(self.headers) {
            true => json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
                "items": items.iter().map(crate::table::partial).collect::<Vec<_>>(),
            }),
            false => json!({
                "kind": self.resource().list_kind,
                "apiVersion": self.resource().api_version(),
                "metadata": metadata,
                "items": items,
            }),
        };
        self.marked(json_response(StatusCode::OK, &body))
    }

    pub(super) fn marked(&self, mut response: Response) -> Response {
        if self.dry_run {
            response.extensions_mut().insert(crate::audit::DryRun);
        }
        response
    }

    /// The request body, decoded.
    pub(super) fn body(&self, body: &[u8]) -> Result<Value, ApiError> {
        parse_body(self.state, self.headers, body)
    }
}
