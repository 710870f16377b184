//! The gRPC health probe: one `grpc.health.v1.Health/Check` call over
//! HTTP/2 without TLS, as upstream's prober makes it. The request and
//! response are one-field protobuf messages, encoded here by hand.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::netns;
use super::probe::Target;

/// `HealthCheckResponse.ServingStatus` names.
const STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/// A `HealthCheckRequest { service }` as a gRPC message (length-prefixed).
fn request(service: &str) -> Vec<u8> {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a); // field 1, length-delimited
        let mut len = service.len();
        while len >= 0x80 {
            message.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        message.push(len as u8);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

/// The `status` of a framed `HealthCheckResponse` (an empty message is
/// status 0, UNKNOWN); None when it is not one.
fn status(framed: &[u8]) -> Option<u64> {
    let message = framed.get(5..)?;
    let Some((&key, varint)) = message.split_first() else {
        return Some(0);
    };
    if key != 0x08 {
        return None;
    }
    let mut value = 0u64;
    for (i, byte) in varint.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Checks `service` (empty: the server as a whole) at `address`.
pub async fn health(target: &Target, address: SocketAddr, service: &str) -> Result<(), String> {
    let failed =
        |e: &dyn std::fmt::Display| format!("failed to connect service \"{address}\": {e}");
    let stream = netns::connect(target.from.clone(), address, Duration::from_secs(10))
        .await
        .map_err(|e| failed(&e))?;
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| failed(&e))?;
    tokio::spawn(connection);
    let call = http::Request::post(format!("http://{address}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kube-probe/1.33")
        .body(Full::new(Bytes::from(request(service))))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(call)
        .await
        .map_err(|e| format!("health rpc failed: {e}"))?;
    let headers = response.headers().clone();
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("health rpc failed: {e}"))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let grpc_status = trailers
        .get("grpc-status")
        .or_else(|| headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
        .to_owned();
    if grpc_status != "0" {
        let message = trailers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        return Err(format!(
            "health rpc probe failed: rpc error: code = {grpc_status} desc = {message}"
        ));
    }
    match status(&collected.to_bytes()) {
        Some(1) => Ok(()),
        Some(other) => Err(format!(
            "service unhealthy (responded with \"{}\")",
            STATUSES.get(other as usize).copied().unwrap_or("UNKNOWN")
        )),
        None => Err("health rpc probe failed: malformed response".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_messages_encode_and_decode() {
        assert_eq!(request(""), [0, 0, 0, 0, 0]);
        assert_eq!(request("db"), [0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
        assert_eq!(status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(status(&[0, 0, 0, 0, 0]), Some(0));
    }
}
