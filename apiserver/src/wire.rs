//! The wire format of kube-apiserver on every response and request body:
//! bodies checked against their Go types before anything reads them
//! (so defaults and validation never meet a wrong type), stored objects
//! holding the fields Go writes without `omitempty`, responses written in
//! Go struct order, pretty-printed for curl and browsers as upstream's
//! content negotiation does (`isPrettyPrint` in
//! apiserver/pkg/endpoints/handlers/negotiation).

use std::sync::LazyLock;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use skiff_api::wire::{encode, Types};
use skiff_api::{Registry, ResourceType};

use crate::error::ApiError;

/// The built-in kinds' types, compiled once per process on first use.
static TYPES: LazyLock<Types> = LazyLock::new(|| Types::build(&Registry::builtin()));

/// Builds the Go types in a thread of their own, so that a server starting
/// up (opening its store, loading its credentials) does not wait for them
/// at its first write.
pub fn prepare() {
    std::thread::spawn(|| LazyLock::force(&TYPES));
}

/// Refuses a body for `resource` that its Go type would not decode: the
/// 400 kube-apiserver answers.
pub fn check(resource: &ResourceType, object: &Value) -> Result<(), ApiError> {
    TYPES
        .check(&resource.api_version(), resource.kind, object)
        .map_err(ApiError::bad_request)
}

/// Sets the fields Go always writes to their zero value, on what is stored.
pub fn fill_zero(object: &mut Value) {
    TYPES.fill_zero(object);
}

/// `value` as kube-apiserver writes it, newline-terminated.
pub fn to_json(value: &Value) -> Vec<u8> {
    TYPES.to_json(value)
}

/// A watch event line: `{"type":...,"object":...}` (metav1.WatchEvent's
/// field order), newline-terminated.
pub fn event_line(kind: &str, object: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"type\":");
    TYPES.write(&mut out, &Value::String(kind.to_owned()));
    out.extend_from_slice(b",\"object\":");
    TYPES.write(&mut out, object);
    out.extend_from_slice(b"}\n");
    out
}

/// Whether the client asked for indented JSON: `?pretty=` as Go's
/// strconv.ParseBool reads it, else a curl, Wget or browser user agent.
fn pretty(request: &Request) -> bool {
    let asked = request.uri().query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("pretty="))
    });
    if let Some(asked) = asked.filter(|a| !a.is_empty()) {
        return matches!(asked, "1" | "t" | "T" | "true" | "TRUE" | "True");
    }
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or_default();
    ["curl", "Wget", "Mozilla/5.0"]
        .iter()
        .any(|prefix| agent.starts_with(prefix))
}

/// Middleware: indents the JSON answers (not the streams: a watch is
/// written line by line) of requests that asked for pretty output.
pub async fn indent(request: Request, next: Next) -> Response {
    let pretty = pretty(&request);
    let response = next.run(request).await;
    let json = response.headers().get(header::CONTENT_TYPE)
        == Some(&HeaderValue::from_static("application/json"));
    if !pretty || !json || response.body().size_hint().exact().is_none() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(encode::indent(&bytes)))
}

/// How much of a body past the limit is read (and dropped) so that the
/// client's stream ends before the 413 answers it; beyond this the
/// connection pays for it with a reset.
const DRAINED: usize = 64 * 1024 * 1024;

/// Reads a request body of at most `limit` bytes, before anything is
/// answered: an HTTP/2 answer sent while the client is still sending ends
/// in a reset stream, which curl and kubectl report instead of the answer.
/// A larger body is read to its end (up to [`DRAINED`]) and refused with
/// 413, as kube-apiserver reads then limits it.
pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(ApiError::bad_request("the request body could not be read"));
        };
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        } else if seen > DRAINED {
            break;
        }
    }
    match seen <= limit {
        true => Ok(kept.freeze()),
        false => Err(ApiError::too_large(limit)),
    }
}
