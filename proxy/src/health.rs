//! The service health server, as kube-proxy's
//! (`pkg/proxy/healthcheck/service_health.go`): a Service with
//! `externalTrafficPolicy: Local` gets a `healthCheckNodePort`, and on it
//! every node answers HTTP with how many of the Service's endpoints it
//! holds — 200 when it has some, 503 when it has none — so that an
//! external load balancer sends traffic only to nodes that can serve it
//! without another hop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::model::{PortName, PortRules, ServiceKey};

/// The longest request head read before answering.
const MAX_REQUEST: usize = 8 * 1024;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Each health-check node port the rules ask for, with its Service and
/// the local endpoints it counts (the most of any of its ports).
pub fn wanted(rules: &BTreeMap<PortName, PortRules>) -> BTreeMap<u16, (ServiceKey, usize)> {
    let mut ports: BTreeMap<u16, (ServiceKey, usize)> = BTreeMap::new();
    for (name, port) in rules {
        if let Some((node_port, local)) = port.health_check {
            let entry = ports
                .entry(node_port)
                .or_insert_with(|| (name.service.clone(), 0));
            entry.1 = entry.1.max(local);
        }
    }
    ports
}

/// The whole HTTP response for `service` with `local` endpoints on this
/// node, as kube-proxy writes it.
pub fn response((namespace, name): &ServiceKey, local: usize) -> String {
    let status = match local {
        0 => "503 Service Unavailable",
        _ => "200 OK",
    };
    let body = format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {namespace:?},\n\t\t\"name\": {name:?}\n\t}},\n\t\"localEndpoints\": {local},\n\t\"serviceProxyHealthy\": true\n}}"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One health-check port at work.
struct Server {
    state: Arc<Mutex<(ServiceKey, usize)>>,
    task: tokio::task::AbortHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A node's health-check ports.
pub struct Health {
    namespace: Option<String>,
    servers: BTreeMap<u16, Server>,
}

impl Health {
    /// The health server of the named network namespace (None: this
    /// process's own).
    pub fn new(namespace: Option<String>) -> Health {
        Health {
            namespace,
            servers: BTreeMap::new(),
        }
    }

    /// Listens on the ports `rules` ask for, with their counts; stops
    /// those no longer asked. A port that cannot be listened on fails the
    /// sync after the others are done.
    pub async fn sync(&mut self, rules: &BTreeMap<PortName, PortRules>) -> Result<(), String> {
        let wanted = wanted(rules);
        self.servers.retain(|port, _| wanted.contains_key(port));
        let mut failures = Vec::new();
        for (port, state) in wanted {
            if let Some(server) = self.servers.get(&port) {
                *server.state.lock().expect("the count") = state;
                continue;
            }
            match self.listen(port, state).await {
                Ok(server) => {
                    self.servers.insert(port, server);
                }
                Err(e) => failures.push(format!("{port}: {e}")),
            }
        }
        match failures.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "cannot listen on health-check node ports {}",
                failures.join(", ")
            )),
        }
    }

    async fn listen(&self, port: u16, state: (ServiceKey, usize)) -> std::io::Result<Server> {
        let listener = crate::netns::within_named(self.namespace.as_deref(), move || {
            let listener = std::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .await?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                tokio::spawn(answer(stream, shared.clone()));
            }
        });
        Ok(Server {
            state,
            task: task.abort_handle(),
        })
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: tokio::net::TcpStream, state: Arc<Mutex<(ServiceKey, usize)>>) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let text = {
        let (service, local) = &*state.lock().expect("the count");
        response(service, *local)
    };
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn port(name: &str, port: &str, health: Option<(u16, usize)>) -> (PortName, PortRules) {
        (
            PortName {
                service: ("default".into(), name.into()),
                port: port.into(),
                protocol: Protocol::Tcp,
            },
            PortRules {
                virtuals: BTreeMap::new(),
                health_check: health,
            },
        )
    }

    #[test]
    fn each_local_service_has_its_port_with_its_local_endpoints() {
        let rules = BTreeMap::from([
            port("web", "http", Some((32000, 1))),
            port("web", "https", Some((32000, 2))),
            port("api", "http", Some((32001, 0))),
            port("plain", "http", None),
        ]);
        let wanted = wanted(&rules);
        assert_eq!(
            wanted,
            BTreeMap::from([
                (32000, (("default".into(), "web".into()), 2)),
                (32001, (("default".into(), "api".into()), 0)),
            ])
        );
    }

    #[test]
    fn it_answers_as_kube_proxy_200_with_endpoints_503_without() {
        let service = ("default".to_string(), "web".to_string());
        let ok = response(&service, 2);
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: application/json\r\n"));
        assert!(ok.ends_with(
            "\r\n\r\n{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}"
        ));
        let body = ok.split("\r\n\r\n").nth(1).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["localEndpoints"], 2);
        assert!(response(&service, 0).starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    }

    #[tokio::test]
    async fn a_node_answers_on_the_health_check_port() {
        let mut health = Health::new(None);
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let number = free.local_addr().unwrap().port();
        drop(free);
        let rules = BTreeMap::from([port("web", "http", Some((number, 1)))]);
        health.sync(&rules).await.unwrap();
        let ask = || async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", number))
                .await
                .unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
                .await
                .unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).await.unwrap();
            text
        };
        assert!(ask().await.starts_with("HTTP/1.1 200 OK"));
        let gone = BTreeMap::from([port("web", "http", Some((number, 0)))]);
        health.sync(&gone).await.unwrap();
        assert!(ask().await.starts_with("HTTP/1.1 503"));
        health.sync(&BTreeMap::new()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while tokio::net::TcpStream::connect(("127.0.0.1", number))
                .await
                .is_ok()
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the port closes once no Service asks for it");
    }
}
