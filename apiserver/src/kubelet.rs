//! Reaching the node agents, as upstream's apiserver reaches kubelets: a
//! Node publishes the port of its kubelet's server in
//! `status.daemonEndpoints.kubeletEndpoint` and, since simulated
//! InternalIPs are not routed, the address in the
//! `kubelet.skiff.dev/address` annotation (else its InternalIP). Requests
//! go there with the cluster's bearer token; answers stream back, and an
//! error answer becomes a `Status` with the kubelet's code and words.

use axum::body::Body;
use axum::http::{self as http, header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::error::ApiError;
use crate::AppState;

/// The annotation with the address of a node's kubelet server.
pub const ADDRESS: &str = "kubelet.skiff.dev/address";

/// Where `node`'s kubelet server listens: `host:port`.
pub fn location(node: &Value) -> Result<String, ApiError> {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let host = node["metadata"]["annotations"][ADDRESS]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            node["status"]["addresses"]
                .as_array()?
                .iter()
                .find(|a| a["type"] == "InternalIP")?["address"]
                .as_str()
                .map(str::to_owned)
        })
        .ok_or_else(|| ApiError::bad_request(format!("node {name:?} has no address")))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| *p > 0 && *p <= u64::from(u16::MAX))
        .ok_or_else(|| ApiError::bad_request(format!("node {name:?} publishes no kubelet port")))?;
    Ok(match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    })
}

/// The `Status` for a kubelet's error answer, as upstream's
/// `GenericHttpResponseChecker` makes it.
fn refused(code: StatusCode, body: &[u8]) -> ApiError {
    let message = String::from_utf8_lossy(body).trim_end().to_owned();
    match code {
        StatusCode::BAD_REQUEST => ApiError::bad_request(message),
        StatusCode::NOT_FOUND => ApiError {
            code,
            reason: "NotFound",
            message,
            details: None,
        },
        _ => ApiError::internal(message),
    }
}

/// Sends `request` (its method and path set) to the kubelet at
/// `location` with the cluster's token, over a connection of its own that
/// may be upgraded; the answer, or the error for one that is not
/// `expected`.
async fn send(
    state: &AppState,
    location: &str,
    request: http::request::Builder,
    expected: StatusCode,
) -> Result<http::Response<hyper::body::Incoming>, ApiError> {
    let path = request.uri_ref().map(|u| u.to_string()).unwrap_or_default();
    let method = request.method_ref().cloned().unwrap_or_default();
    let url = format!("http://{location}{path}");
    let unreachable =
        |e: &dyn std::fmt::Display| ApiError::internal(format!("{method} \"{url}\": {e}"));
    let stream = tokio::net::TcpStream::connect(location)
        .await
        .map_err(|e| unreachable(&format!("dial tcp {location}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
    tokio::spawn(connection.with_upgrades());
    let mut request = request.header(header::HOST, location);
    if let Some(token) = &state.token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(&e))?;
    let code = response.status();
    if code != expected {
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(refused(code, &body));
    }
    Ok(response)
}

/// GETs `path` (with its query) from the kubelet at `location`; a 200
/// answer streams back as it comes.
pub async fn get(state: &AppState, location: &str, path: &str) -> Result<Response, ApiError> {
    let response = send(state, location, Request::get(path), StatusCode::OK).await?;
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| header::HeaderValue::from_static("text/plain"));
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::new(response.into_body()),
    )
        .into_response())
}

/// The body of a 200 answer to a GET of `path` from the kubelet at
/// `location` (at most 16 MiB).
pub async fn fetch(state: &AppState, location: &str, path: &str) -> Result<bytes::Bytes, ApiError> {
    let response = get(state, location, path).await?;
    axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Sends an upgrade request (exec, port-forward) to the kubelet at
/// `location` as `path`, and once it switches protocols joins the
/// client's connection to the kubelet's, byte for byte: the apiserver
/// needs to know neither WebSocket nor SPDY.
pub async fn upgrade(
    state: &AppState,
    mut parts: axum::http::request::Parts,
    location: &str,
    path: &str,
) -> Result<Response, ApiError> {
    let required = || ApiError::bad_request("Upgrade request required");
    if !parts.headers.contains_key(header::UPGRADE) {
        return Err(required());
    }
    let client = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(required)?;
    let mut request = Request::builder().method(parts.method.clone()).uri(path);
    for (name, value) in &parts.headers {
        if name != header::AUTHORIZATION && name != header::HOST {
            request = request.header(name, value);
        }
    }
    let expected = StatusCode::SWITCHING_PROTOCOLS;
    let mut response = send(state, location, request, expected).await?;
    let code = response.status();
    let kubelet = hyper::upgrade::on(&mut response);
    let mut answer = Response::builder().status(code);
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    tokio::spawn(async move {
        let (Ok(client), Ok(kubelet)) = tokio::join!(client, kubelet) else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut kubelet = hyper_util::rt::TokioIo::new(kubelet);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await;
    });
    answer
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_publishes_where_its_kubelet_listens() {
        let node = json!({"metadata": {"name": "n", "annotations": {ADDRESS: "127.0.0.1"}},
            "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 40123}},
                       "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}});
        assert_eq!(location(&node).unwrap(), "127.0.0.1:40123");
        let plain = json!({"metadata": {"name": "n"},
            "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                       "addresses": [{"type": "InternalIP", "address": "fd00::2"}]}});
        assert_eq!(location(&plain).unwrap(), "[fd00::2]:10250");
        let none = json!({"metadata": {"name": "n"}, "status": {}});
        assert_eq!(
            location(&none).unwrap_err().message,
            "node \"n\" has no address"
        );
        let error = refused(
            StatusCode::BAD_REQUEST,
            b"container \"c\" in pod \"p\" is waiting to start: ContainerCreating\n",
        );
        assert_eq!(
            (error.reason, error.message.as_str()),
            (
                "BadRequest",
                "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
            )
        );
    }
}
