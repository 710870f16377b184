//! Scenario `dns`: the real `skiff server`'s cluster DNS under load. 1,000
//! Services are created through the API; once DNS answers every one of
//! them, several UDP sockets on loopback each ask A questions for them in
//! a closed loop (one query in flight per socket, pre-encoded), for a
//! bounded time and count; the figures are queries/s and the latency of
//! each query from send to answer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::UdpSocket;

use crate::flow::create_all;
use crate::server::{http, skiff_binary, start_with};
use crate::stats::{collect, round3};

const SERVICES: usize = 1_000;
/// Sockets asking at once.
const SOCKETS: usize = 8;
/// At most this many queries per socket, whatever the time.
const MAX_QUERIES_PER_SOCKET: usize = 2_000_000;
/// A query unanswered this long counts as lost and fails the run.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

fn service_name(i: usize) -> String {
    format!("svc-{i}")
}

/// An A query for `name` with id 0, recursion desired, no EDNS.
fn query(name: &str) -> Vec<u8> {
    let mut message = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.extend_from_slice(&[0, 0, 1, 0, 1]);
    message
}

/// The response code and the number of answers of a response.
fn rcode_and_answers(response: &[u8]) -> Option<(u8, u16)> {
    Some((
        response.get(3)? & 0x0f,
        u16::from_be_bytes([*response.get(6)?, *response.get(7)?]),
    ))
}

/// Sends `query` with `id` on a connected socket and waits for its answer.
async fn ask(
    socket: &UdpSocket,
    query: &mut [u8],
    id: u16,
    buffer: &mut [u8],
) -> Result<usize, String> {
    query[..2].copy_from_slice(&id.to_be_bytes());
    socket.send(query).await.map_err(|e| e.to_string())?;
    loop {
        let length = tokio::time::timeout(ANSWER_TIMEOUT, socket.recv(buffer))
            .await
            .map_err(|_| format!("query {id} unanswered after {ANSWER_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        if length >= 12 && buffer[..2] == id.to_be_bytes() {
            return Ok(length);
        }
    }
}

async fn connected(dns: SocketAddr) -> Result<UdpSocket, String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    socket.connect(dns).await.map_err(|e| e.to_string())?;
    Ok(socket)
}

/// Creates the Services, waits for DNS to answer them all, then loads it.
pub async fn run(duration: Duration) -> Result<Value, String> {
    let binary = skiff_binary()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = start_with(
        &binary,
        dir.path(),
        &["--dns-upstream", "refuse", "--nodes", "0"],
    )?;
    let client = http(&server.ca)?;
    eprintln!("dns: creating {SERVICES} Services");
    let bodies = (0..SERVICES)
        .map(|i| {
            json!({
                "metadata": {"name": service_name(i)},
                "spec": {"clusterIP": format!("10.100.{}.{}", i / 250, i % 250 + 1),
                         "ports": [{"name": "http", "port": 80}]}
            })
        })
        .collect();
    create_all(
        &client,
        &server,
        "/api/v1/namespaces/default/services",
        bodies,
    )
    .await?;
    let created = Instant::now();
    let queries: Vec<Vec<u8>> = (0..SERVICES)
        .map(|i| query(&format!("{}.default.svc.cluster.local", service_name(i))))
        .collect();

    // Every name answers its address.
    let socket = connected(server.dns).await?;
    let mut buffer = vec![0; 4096];
    for (i, query) in queries.iter().enumerate() {
        let mut query = query.clone();
        loop {
            let length = ask(&socket, &mut query, i as u16, &mut buffer).await?;
            if rcode_and_answers(&buffer[..length]) == Some((0, 1)) {
                break;
            }
            if created.elapsed() > Duration::from_secs(30) {
                return Err(format!("{} never answered", service_name(i)));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let synced_ms = round3(created.elapsed().as_secs_f64() * 1e3);

    eprintln!("dns: {SOCKETS} sockets asking for {}s", duration.as_secs());
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let tasks = (0..SOCKETS)
        .map(|s| {
            let mut queries = queries.clone();
            let dns = server.dns;
            tokio::spawn(async move {
                let socket = connected(dns).await?;
                let mut buffer = vec![0; 4096];
                let mut latencies = Vec::with_capacity(1 << 18);
                for n in 0..MAX_QUERIES_PER_SOCKET {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let query = &mut queries[(n * SOCKETS + s) % SERVICES];
                    let began = Instant::now();
                    let length = ask(&socket, query, n as u16, &mut buffer).await?;
                    latencies.push(began.elapsed());
                    if rcode_and_answers(&buffer[..length]) != Some((0, 1)) {
                        return Err("an answer without its A record".to_owned());
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let figures = collect(tasks, started, "queries_per_s").await?;
    Ok(json!({
        "scenario": "dns",
        "services": SERVICES,
        "created_to_all_answered_ms": synced_ms,
        "udp_sockets": SOCKETS,
        "seconds": duration.as_secs(),
        "udp_a_queries": figures,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_an_a_question() {
        let q = query("a.svc");
        assert_eq!(&q[12..], &[1, b'a', 3, b's', b'v', b'c', 0, 0, 1, 0, 1]);
        assert_eq!(u16::from_be_bytes([q[4], q[5]]), 1, "one question");
    }

    #[test]
    fn reads_the_code_and_answer_count() {
        let mut response = vec![0; 12];
        response[3] = 0x83;
        response[7] = 2;
        assert_eq!(rcode_and_answers(&response), Some((3, 2)));
        assert_eq!(rcode_and_answers(&response[..5]), None);
    }
}
