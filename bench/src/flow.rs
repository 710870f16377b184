//! Scenarios `schedule` and `deploy`: the pod creation flow of the real
//! `skiff server`, measured from outside through the API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::server::{http, rss_mb, skiff_binary, start_with, Running};
use crate::stats::round3;

/// Requests in flight at once when creating many objects.
const CLIENTS: usize = 64;

/// POSTs every body to `path`, `CLIENTS` at a time.
pub async fn create_all(
    client: &reqwest::Client,
    server: &Running,
    path: &str,
    bodies: Vec<Value>,
) -> Result<(), String> {
    let requests = bodies.into_iter().map(|b| (path.to_owned(), b)).collect();
    send_all(client, server, reqwest::Method::POST, requests, 201).await
}

/// Sends each (path, JSON body) with `method`, `CLIENTS` at a time; each
/// must answer `expected` (PATCH bodies are merge patches).
pub async fn send_all(
    client: &reqwest::Client,
    server: &Running,
    method: reqwest::Method,
    requests: Vec<(String, Value)>,
    expected: u16,
) -> Result<(), String> {
    let content_type = if method == reqwest::Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    futures::stream::iter(requests)
        .map(|(path, body)| {
            let request = client
                .request(method.clone(), format!("{}{path}", server.url))
                .bearer_auth(&server.token)
                .header("content-type", content_type)
                .body(body.to_string());
            async move {
                let response = request.send().await.map_err(|e| e.to_string())?;
                match response.status().as_u16() {
                    code if code == expected => Ok(()),
                    code => Err(format!(
                        "{path} answered {code}: {}",
                        response.text().await.unwrap_or_default()
                    )),
                }
            }
        })
        .buffer_unordered(CLIENTS)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
}

pub async fn get(client: &reqwest::Client, server: &Running, path: &str) -> Result<Value, String> {
    client
        .get(format!("{}{path}", server.url))
        .bearer_auth(&server.token)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
}

/// The times objects were created at, by name.
pub type Created = Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

/// POSTs each (name, body) to `path` at a steady `rate` per second,
/// recording when each was sent in `created`; the task ends once every
/// create answered 201.
pub fn create_at_rate(
    client: &reqwest::Client,
    server: &Running,
    path: &str,
    rate: usize,
    bodies: Vec<(String, Value)>,
    created: &Created,
) -> tokio::task::JoinHandle<Result<(), String>> {
    let (client, created) = (client.clone(), created.clone());
    let (url, token) = (format!("{}{path}", server.url), server.token.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
        let mut sends = Vec::new();
        for (name, body) in bodies {
            tick.tick().await;
            created.lock().expect("times").insert(name, Instant::now());
            let request = client
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.to_string());
            sends.push(tokio::spawn(request.send()));
        }
        for send in sends {
            let response = send
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if response.status() != 201 {
                return Err(format!("a create answered {}", response.status()));
            }
        }
        Ok(())
    })
}

/// Reads a watch's events, handing each to `on_event` until it answers
/// false, for at most `limit`.
pub async fn read_watch(
    mut watch: reqwest::Response,
    limit: Duration,
    mut on_event: impl FnMut(&Value) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut buffer = Vec::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline.into(), watch.chunk())
            .await
            .map_err(|_| format!("not done after {} s", limit.as_secs()))?
            .map_err(|e| e.to_string())?
            .ok_or("the watch ended")?;
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: Value = serde_json::from_slice(&line).map_err(|e| e.to_string())?;
            if !on_event(&event) {
                return Ok(());
            }
        }
    }
}

/// Opens a watch of `path` (which says `watch=1`).
pub async fn open_watch(
    client: &reqwest::Client,
    server: &Running,
    path: &str,
) -> Result<reqwest::Response, String> {
    client
        .get(format!("{}{path}", server.url))
        .bearer_auth(&server.token)
        .send()
        .await
        .map_err(|e| e.to_string())
}

/// A server with `nodes` simulated nodes, once they have all registered
/// (at most 120 s), and how long that took. The directory lives as long as
/// the server is used.
pub async fn with_nodes(
    nodes: usize,
) -> Result<(tempfile::TempDir, Running, reqwest::Client, Duration), String> {
    let binary = skiff_binary()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = start_with(&binary, dir.path(), &["--nodes", &nodes.to_string()])?;
    let client = http(&server.ca)?;
    let registering = Instant::now();
    while get(&client, &server, "/api/v1/nodes").await?["items"]
        .as_array()
        .map_or(0, Vec::len)
        < nodes
    {
        if registering.elapsed() > Duration::from_secs(120) {
            return Err(format!("{nodes} nodes did not register in 120 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((dir, server, client, registering.elapsed()))
}

/// A Ready node as a kubelet registers it, without a kubelet behind it.
pub fn node(i: usize) -> Value {
    let resources = json!({"cpu": "8", "memory": "32Gi", "pods": "110"});
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("bench-node-{i}"), "labels": {"kubernetes.io/hostname": format!("bench-node-{i}")}},
        "status": {"capacity": resources, "allocatable": resources,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
    })
}

fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i}")},
        "spec": {"containers": [{"name": "c", "image": "nginx",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
    })
}

/// Scheduling throughput: 10,000 pods wait (no nodes yet), 5,000 nodes
/// arrive, and the scheduler places every pod. Measured from the first
/// binding to the last, seen through a watch; the nodes have no kubelets,
/// so nothing else loads the server meanwhile.
pub async fn schedule(nodes: usize, pods: usize) -> Result<Value, String> {
    let (_dir, server, client, _) = with_nodes(0).await?;
    eprintln!("schedule: creating {pods} pending pods");
    create_all(
        &client,
        &server,
        "/api/v1/namespaces/default/pods",
        (0..pods).map(pod).collect(),
    )
    .await?;
    let list = get(&client, &server, "/api/v1/pods?limit=1").await?;
    let revision = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    let watch = open_watch(
        &client,
        &server,
        &format!("/api/v1/pods?watch=1&resourceVersion={revision}"),
    )
    .await?;
    eprintln!("schedule: registering {nodes} nodes");
    let registering = Instant::now();
    create_all(
        &client,
        &server,
        "/api/v1/nodes",
        (0..nodes).map(node).collect(),
    )
    .await?;
    let registered = registering.elapsed();
    let (mut bound, mut first, mut last) = (std::collections::HashSet::new(), None, None);
    read_watch(watch, Duration::from_secs(300), |event| {
        let pod = &event["object"];
        if pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            let now = Instant::now();
            first.get_or_insert(now);
            last = Some(now);
            bound.insert(
                pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        bound.len() < pods
    })
    .await
    .map_err(|e| format!("{e} ({} of {pods} pods bound)", bound.len()))?;
    let span = last
        .zip(first)
        .map_or(0.0, |(l, f)| l.duration_since(f).as_secs_f64());
    Ok(json!({
        "scenario": "schedule",
        "nodes": nodes,
        "pods": pods,
        "node_registration_s": round3(registered.as_secs_f64()),
        "first_to_last_binding_s": round3(span),
        "pods_scheduled_per_s": round3(pods as f64 / span.max(1e-9)),
        "server_rss_mb": rss_mb(server.child.id())?,
    }))
}

/// A Deployment of `replicas` on `nodes` simulated nodes: from the create
/// to every replica available (the Deployment's status), and the server's
/// memory then.
pub async fn deploy(nodes: usize, replicas: usize) -> Result<Value, String> {
    eprintln!("deploy: waiting for {nodes} nodes");
    let (_dir, server, client, registered) = with_nodes(nodes).await?;
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    });
    eprintln!("deploy: a Deployment of {replicas} replicas");
    let began = Instant::now();
    create_all(
        &client,
        &server,
        "/apis/apps/v1/namespaces/default/deployments",
        vec![deployment],
    )
    .await?;
    let mut available = 0;
    while available < replicas {
        if began.elapsed() > Duration::from_secs(600) {
            return Err(format!(
                "only {available} of {replicas} available after 600 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let d = get(
            &client,
            &server,
            "/apis/apps/v1/namespaces/default/deployments/web",
        )
        .await?;
        available = d["status"]["availableReplicas"].as_u64().unwrap_or(0) as usize;
    }
    let took = began.elapsed();
    Ok(json!({
        "scenario": "deploy",
        "nodes": nodes,
        "replicas": replicas,
        "node_registration_s": round3(registered.as_secs_f64()),
        "create_to_all_available_s": round3(took.as_secs_f64()),
        "server_rss_mb": rss_mb(server.child.id())?,
    }))
}

/// Pod startup latency: pods created at a steady `rate` per second for
/// `seconds` on `nodes` simulated nodes; for each, from its create to the
/// watch showing it Running (p50, p99).
pub async fn podstart(nodes: usize, rate: usize, seconds: u64) -> Result<Value, String> {
    let (_dir, server, client, _) = with_nodes(nodes).await?;
    let watch = open_watch(&client, &server, "/api/v1/namespaces/default/pods?watch=1").await?;
    let total = rate * seconds as usize;
    let created: Created = Arc::default();
    eprintln!("podstart: {total} pods at {rate}/s on {nodes} nodes");
    let bodies = (0..total).map(|i| (format!("p-{i}"), pod(i))).collect();
    let creator = create_at_rate(
        &client,
        &server,
        "/api/v1/namespaces/default/pods",
        rate,
        bodies,
        &created,
    );
    let mut latencies = Vec::new();
    let mut running = std::collections::HashSet::new();
    read_watch(watch, Duration::from_secs(seconds + 120), |event| {
        let pod = &event["object"];
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if pod["status"]["phase"] == "Running" && !running.contains(&name) {
            if let Some(start) = created.lock().expect("times").get(&name) {
                latencies.push(start.elapsed());
                running.insert(name);
            }
        }
        running.len() < total
    })
    .await?;
    creator.await.map_err(|e| e.to_string())??;
    let mut figures = crate::stats::summary(latencies);
    figures["scenario"] = json!("podstart");
    figures["nodes"] = json!(nodes);
    figures["pods_per_s"] = json!(rate);
    Ok(figures)
}
