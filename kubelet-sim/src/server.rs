//! The kubelet's HTTP server, one for all the nodes of a process, which
//! the apiserver reaches at the address and port each Node publishes
//! (`daemonEndpoints.kubeletEndpoint`): `containerLogs` for both runtimes
//! (a simulated container's log is synthesized, [`crate::podlog`]),
//! `exec` and `portForward` ([`crate::stream`]; the simulated runtime says
//! it runs no processes).
//! Every request must carry the cluster's bearer token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter};
use axum::Router;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::logs::{select, select_plain, Options};
use crate::Agents;

/// How often a followed log is read again for what was added.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

fn text(code: StatusCode, message: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

/// The server's routes over the agents of this process.
pub(crate) fn router(agents: Arc<Agents>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            on(GET_OR_POST, |a, p, q, r| streamed(a, p, q, r, false)),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            on(GET_OR_POST, |a, p, q, r| streamed(a, p, q, r, true)),
        )
        .route("/skiff/usage", get(usage))
        .route(
            "/portForward/{namespace}/{pod}",
            get(port_forward).post(port_forward),
        )
        .with_state(agents)
}

impl Agents {
    /// Whether the request carries the cluster's token (if it has one).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| given == token.as_str())
    }

    /// The pod a request names, if the caller may ask and the pod is one of
    /// this process's; else the answer.
    fn caller_pod(
        &self,
        headers: &HeaderMap,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Pod>, Box<Response>> {
        if !self.authorized(headers) {
            return Err(Box::new(text(StatusCode::UNAUTHORIZED, "Unauthorized")));
        }
        self.pod(namespace, name).ok_or_else(|| {
            Box::new(text(
                StatusCode::NOT_FOUND,
                format!("pod {name:?} of namespace {namespace:?} not found on this node"),
            ))
        })
    }

    /// A pod bound to one of this process's nodes.
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods
            .get(namespace, name)
            .filter(|pod| self.nodes.contains_key(crate::node_of(pod)))
    }
}

async fn container_logs(
    State(agents): State<Arc<Agents>>,
    Path((namespace, name, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let pod = match agents.caller_pod(&headers, &namespace, &name) {
        Ok(pod) => pod,
        Err(refusal) => return *refusal,
    };
    let options = match Options::parse(&query, jiff::Timestamp::now()) {
        Ok(options) => options,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let uid = pod.uid().unwrap_or_default();
    let Some(path) = agents.runtime.log(&uid, &container, options.previous) else {
        if agents.runtime.name() == "sim" {
            let object = serde_json::to_value(&*pod).unwrap_or_default();
            return match crate::podlog::render(&object, Some(&container)) {
                Ok(log) => text(
                    StatusCode::OK,
                    String::from_utf8_lossy(&select_plain(&log, &options)),
                ),
                Err(message) => text(StatusCode::BAD_REQUEST, message),
            };
        }
        return text(
            StatusCode::BAD_REQUEST,
            no_log(&pod, &container, options.previous),
        );
    };
    let log = match tokio::fs::read(&path).await {
        Ok(log) => log,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", path.display()),
            )
        }
    };
    let (first, read) = select(&log, &options);
    let streaming = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !options.follow || options.previous {
        return (streaming, first).into_response();
    }
    // Following: what was there, then what the run adds while it runs.
    let sent = first.len();
    let follow = Follow {
        agents,
        uid,
        container,
        path,
        offset: read as u64,
        sent,
        options: Options {
            tail_lines: None,
            ..options
        },
    };
    let rest = futures::stream::unfold(Some(follow), |follow| async move {
        let mut follow = follow?;
        let chunk = follow.next().await;
        let done = chunk.is_none();
        Some((
            Ok::<_, std::io::Error>(chunk.unwrap_or_default()),
            (!done).then_some(follow),
        ))
    });
    let head = futures::stream::once(async move { Ok::<_, std::io::Error>(first) });
    (
        streaming,
        Body::from_stream(futures::StreamExt::chain(head, rest)),
    )
        .into_response()
}

/// Exec and attach take GET (WebSocket) and POST (SPDY), as upstream.
const GET_OR_POST: MethodFilter = MethodFilter::GET.or(MethodFilter::POST);

/// An exec (or, when `attach`, an attach) session over the protocol the
/// client asks for.
async fn streamed(
    State(agents): State<Arc<Agents>>,
    Path((namespace, name, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    request: axum::extract::Request,
    attach: bool,
) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, _) = request.into_parts();
    let headers = parts.headers.clone();
    let pod = match agents.caller_pod(&headers, &namespace, &name) {
        Ok(pod) => pod,
        Err(refusal) => return *refusal,
    };
    let options = crate::stream::Options::parse(&query);
    // Started first: why it cannot start is the answer whatever the
    // protocol (kubectl falls back from WebSocket to SPDY on a refusal).
    let session = match attach {
        true => agents.runtime.attach(&pod, &container, options.stdin).await,
        false => {
            let command = options.command.clone();
            agents
                .runtime
                .exec(&pod, &container, command, options.tty)
                .await
        }
    };
    let session = match session {
        Ok(session) => session,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    if is_spdy(&headers) {
        // kubectl before 1.30: the v4 channel protocol's streams over SPDY.
        let offered = headers
            .get_all("X-Stream-Protocol-Version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == "v4.channel.k8s.io");
        if !offered {
            return text(
                StatusCode::BAD_REQUEST,
                "exec and attach over SPDY are served with the v4.channel.k8s.io protocol only",
            );
        }
        return spdy_upgrade(&mut parts, "v4.channel.k8s.io", move |io| {
            crate::spdy::exec(io, session, options)
        });
    }
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &()).await;
    let Ok(upgrade) = upgrade else {
        return text(
            StatusCode::BAD_REQUEST,
            "exec and attach are served over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) and SPDY/3.1",
        );
    };
    upgrade
        .protocols(crate::stream::PROTOCOLS)
        .on_upgrade(move |socket| crate::stream::serve(socket, session, options))
}

async fn port_forward(
    State(agents): State<Arc<Agents>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    request: axum::extract::Request,
) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, _) = request.into_parts();
    let headers = parts.headers.clone();
    let pod = match agents.caller_pod(&headers, &namespace, &name) {
        Ok(pod) => pod,
        Err(refusal) => return *refusal,
    };
    let Some(netns) = agents.runtime.network(&pod) else {
        return text(StatusCode::BAD_REQUEST, crate::runtime::NO_PROCESSES);
    };
    // kubectl asks for SPDY (a plain upgrade, or tunnelled in a
    // WebSocket, which it falls back from when refused); the Python
    // client for the channel protocol over a WebSocket.
    if is_spdy(&headers) {
        return spdy_upgrade(&mut parts, "portforward.k8s.io", move |io| {
            crate::spdy::forward(io, netns)
        });
    }
    let channel = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "v4.channel.k8s.io");
    // Over a WebSocket the ports are in the query (over SPDY, in each
    // stream's headers).
    let ports = match crate::stream::ports(&query) {
        Ok(ports) => ports,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &()).await;
    let (Ok(upgrade), true) = (upgrade, channel) else {
        return text(
            StatusCode::BAD_REQUEST,
            "port-forward is served over SPDY/3.1 and over WebSocket (v4.channel.k8s.io)",
        );
    };
    upgrade
        .protocols(["v4.channel.k8s.io"])
        .on_upgrade(move |socket| crate::stream::forward(socket, netns, ports))
}

/// Whether a request asks to upgrade to SPDY/3.1.
fn is_spdy(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"))
}

/// Answers 101 to a SPDY/3.1 upgrade with `protocol` and serves the
/// upgraded connection with `serve`.
fn spdy_upgrade<F>(
    parts: &mut axum::http::request::Parts,
    protocol: &'static str,
    serve: impl FnOnce(hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>) -> F + Send + 'static,
) -> Response
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return text(StatusCode::BAD_REQUEST, "Upgrade request required");
    };
    tokio::spawn(async move {
        if let Ok(io) = on_upgrade.await {
            serve(hyper_util::rt::TokioIo::new(io)).await;
        }
    });
    axum::http::Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(axum::http::header::CONNECTION, "Upgrade")
        .header(axum::http::header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", protocol)
        .body(Body::empty())
        .unwrap_or_default()
}

/// What the pods of this process's nodes use, and so the nodes: the
/// source of `metrics.k8s.io`, which the apiserver gathers from every
/// agent.
async fn usage(State(agents): State<Arc<Agents>>, headers: HeaderMap) -> Response {
    if !agents.authorized(&headers) {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let pods: Vec<Arc<Pod>> = agents
        .pods
        .list()
        .into_iter()
        .filter(|p| agents.nodes.contains_key(crate::node_of(p)))
        .collect();
    let node_of: HashMap<(String, String), String> = pods
        .iter()
        .map(|p| {
            let key = (p.namespace().unwrap_or_default(), p.name_any());
            (key, crate::node_of(p).to_owned())
        })
        .collect();
    let mut nodes: HashMap<&str, (u64, u64)> =
        agents.nodes.keys().map(|n| (n.as_str(), (0, 0))).collect();
    let mut listed = Vec::new();
    for crate::runtime::PodUsage {
        namespace,
        name,
        containers,
    } in agents.runtime.usage(&pods)
    {
        let node = node_of
            .get(&(namespace.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        if let Some(total) = nodes.get_mut(node.as_str()) {
            for (_, cpu, memory) in &containers {
                total.0 += cpu;
                total.1 += memory;
            }
        }
        let containers: Vec<serde_json::Value> = containers
            .into_iter()
            .map(|(name, cpu, memory)| serde_json::json!({"name": name, "cpu": cpu, "memory": memory}))
            .collect();
        listed.push(serde_json::json!({"namespace": namespace, "name": name, "node": node, "containers": containers}));
    }
    let nodes: Vec<serde_json::Value> = nodes
        .into_iter()
        .map(
            |(name, (cpu, memory))| serde_json::json!({"name": name, "cpu": cpu, "memory": memory}),
        )
        .collect();
    axum::Json(serde_json::json!({"nodes": nodes, "pods": listed})).into_response()
}

/// Why a process-runtime container has no log to show.
fn no_log(pod: &Pod, container: &str, previous: bool) -> String {
    let name = pod.name_any();
    if previous {
        return format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        );
    }
    let reason = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|s| s.name == container))
        .and_then(|s| s.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .unwrap_or_else(|| "ContainerCreating".into());
    format!("container \"{container}\" in pod \"{name}\" is waiting to start: {reason}")
}

/// A followed log: reads what its run appends until the run ends.
struct Follow {
    agents: Arc<Agents>,
    uid: String,
    container: String,
    path: std::path::PathBuf,
    offset: u64,
    sent: usize,
    options: Options,
}

impl Follow {
    /// The next piece to send, waiting for one; None when the run is over
    /// (or the limit reached).
    async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if self
                .options
                .limit_bytes
                .is_some_and(|limit| self.sent >= limit)
            {
                return None;
            }
            let running = self.agents.runtime.running(&self.uid, &self.container)
                && self
                    .agents
                    .runtime
                    .log(&self.uid, &self.container, false)
                    .as_ref()
                    == Some(&self.path);
            let mut added = Vec::new();
            if let Ok(mut file) = tokio::fs::File::open(&self.path).await {
                if file
                    .seek(std::io::SeekFrom::Start(self.offset))
                    .await
                    .is_ok()
                {
                    let _ = file.read_to_end(&mut added).await;
                }
            }
            let options = Options {
                limit_bytes: self.options.limit_bytes.map(|l| l - self.sent),
                ..self.options.clone()
            };
            let (chunk, read) = select(&added, &options);
            self.offset += read as u64;
            if !chunk.is_empty() {
                self.sent += chunk.len();
                return Some(chunk);
            }
            if !running {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}
