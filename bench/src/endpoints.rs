//! Scenario `endpoints`: how soon a pod's readiness change reaches its
//! EndpointSlice. `services` Services of `per_service` pods each, the pods
//! bound to kubelet-less nodes with their Running/Ready status written by
//! the benchmark itself; once every Service's slice holds its ready
//! endpoints, `changes` pods (each a different one) are made unready at
//! `rate` per second, each measured from its status write's response to the
//! moment a watch on EndpointSlices shows its endpoint not ready.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::flow::{create_all, get, node, open_watch, read_watch, send_all, with_nodes};
use crate::stats::{round3, summary};

/// Nodes the pods are bound to.
const NODES: usize = 100;
/// How long the endpoints may take to settle before the changes.
const SETTLE: Duration = Duration::from_secs(300);

fn pod_name(k: usize) -> String {
    format!("p-{k}")
}

fn pod_ip(k: usize) -> String {
    format!("10.{}.{}.{}", 64 + k / 62_500, k / 250 % 250, k % 250 + 1)
}

/// For one change: when its status write was answered, when a watch on
/// pods showed it (the floor of what any controller can do), and when the
/// watch on EndpointSlices did.
#[derive(Default)]
struct Change {
    answered: Option<Instant>,
    pod_seen: Option<Instant>,
    seen: Option<Instant>,
}

/// The scenario; see the module's documentation.
pub async fn run(
    services: usize,
    per_service: usize,
    changes: usize,
    rate: u32,
) -> Result<Value, String> {
    let pods = services * per_service;
    let (_dir, server, client, _) = with_nodes(0).await?;
    let began = Instant::now();
    eprintln!("endpoints: {NODES} nodes, {services} Services, {pods} pods");
    create_all(
        &client,
        &server,
        "/api/v1/nodes",
        (0..NODES).map(node).collect(),
    )
    .await?;
    let service = |i: usize| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{i}")},
               "spec": {"selector": {"app": format!("svc-{i}")},
                        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}})
    };
    create_all(
        &client,
        &server,
        "/api/v1/namespaces/default/services",
        (0..services).map(service).collect(),
    )
    .await?;
    let pod = |k: usize| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": pod_name(k), "labels": {"app": format!("svc-{}", k / per_service)}},
               "spec": {"nodeName": format!("bench-node-{}", k % NODES),
                        "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 8080}]}]}})
    };
    create_all(
        &client,
        &server,
        "/api/v1/namespaces/default/pods",
        (0..pods).map(pod).collect(),
    )
    .await?;
    let status = |k: usize, ready: bool| {
        let path = format!("/api/v1/namespaces/default/pods/{}/status", pod_name(k));
        let ready = if ready { "True" } else { "False" };
        let status = json!({"status": {"phase": "Running", "podIP": pod_ip(k), "podIPs": [{"ip": pod_ip(k)}],
                                       "conditions": [{"type": "Ready", "status": ready}]}});
        (path, status)
    };
    send_all(
        &client,
        &server,
        reqwest::Method::PATCH,
        (0..pods).map(|k| status(k, true)).collect(),
        200,
    )
    .await?;
    eprintln!("endpoints: waiting for every Service's slice to hold its ready endpoints");
    let slices_path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
    let revision = loop {
        let list = get(&client, &server, slices_path).await?;
        let mut ready: HashMap<&str, usize> = HashMap::new();
        for slice in list["items"].as_array().into_iter().flatten() {
            let service = slice["metadata"]["labels"]["kubernetes.io/service-name"]
                .as_str()
                .unwrap_or_default();
            let endpoints = slice["endpoints"].as_array().into_iter().flatten();
            *ready.entry(service).or_default() += endpoints
                .filter(|e| e["conditions"]["ready"] == true)
                .count();
        }
        let settled = ready.values().filter(|n| **n == per_service).count();
        if settled == services {
            break list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .to_owned();
        }
        if began.elapsed() > SETTLE {
            return Err(format!(
                "{settled} of {services} Services have their ready endpoints after {} s",
                SETTLE.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let settled_s = began.elapsed().as_secs_f64();
    let watch = open_watch(
        &client,
        &server,
        &format!("{slices_path}?watch=1&resourceVersion={revision}"),
    )
    .await?;
    let pod_watch = open_watch(
        &client,
        &server,
        &format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={revision}"),
    )
    .await?;
    // Distinct pods spread over the Services (a stride coprime with the
    // pod count).
    let stride = (7_919..).find(|s| gcd(*s, pods) == 1).expect("a stride");
    let chosen: Vec<usize> = (0..changes.min(pods)).map(|n| n * stride % pods).collect();
    let pending: Arc<Mutex<HashMap<String, Change>>> = Arc::new(Mutex::new(
        chosen
            .iter()
            .map(|k| (pod_name(*k), Change::default()))
            .collect(),
    ));
    eprintln!("endpoints: {} readiness changes at {rate}/s", chosen.len());
    let writer = {
        let (client, pending) = (client.clone(), pending.clone());
        let (url, token) = (server.url.clone(), server.token.clone());
        let writes: Vec<(String, (String, Value))> = chosen
            .iter()
            .map(|k| (pod_name(*k), status(*k, false)))
            .collect();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
            let mut sends = Vec::new();
            for (name, (path, body)) in writes {
                tick.tick().await;
                let request = client
                    .patch(format!("{url}{path}"))
                    .bearer_auth(&token)
                    .header("content-type", "application/merge-patch+json")
                    .body(body.to_string());
                let pending = pending.clone();
                sends.push(tokio::spawn(async move {
                    let response = request.send().await.map_err(|e| e.to_string())?;
                    let answered = Instant::now();
                    if response.status() != 200 {
                        return Err(format!("a status write answered {}", response.status()));
                    }
                    if let Some(change) = pending.lock().expect("changes").get_mut(&name) {
                        change.answered = Some(answered);
                    }
                    Ok::<(), String>(())
                }));
            }
            for send in sends {
                send.await.map_err(|e| e.to_string())??;
            }
            Ok::<(), String>(())
        })
    };
    let total = chosen.len();
    let limit = Duration::from_secs(60) + Duration::from_secs(total as u64) / rate;
    let pod_reader = {
        let pending = pending.clone();
        let mut seen = 0;
        tokio::spawn(read_watch(pod_watch, limit, move |event| {
            let pod = &event["object"];
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let unready = pod["status"]["conditions"][0]["status"] == "False";
            let mut pending = pending.lock().expect("changes");
            if let Some(change) = pending
                .get_mut(name)
                .filter(|c| unready && c.pod_seen.is_none())
            {
                change.pod_seen = Some(Instant::now());
                seen += 1;
            }
            seen < total
        }))
    };
    let mut seen = 0;
    read_watch(watch, limit, |event| {
        let mut pending = pending.lock().expect("changes");
        for endpoint in event["object"]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = endpoint["targetRef"]["name"].as_str().unwrap_or_default();
            if endpoint["conditions"]["ready"] != false {
                continue;
            }
            if let Some(change) = pending.get_mut(name).filter(|c| c.seen.is_none()) {
                change.seen = Some(Instant::now());
                seen += 1;
            }
        }
        seen < total
    })
    .await
    .map_err(|e| format!("{e} ({seen} of {total} changes seen)"))?;
    writer.await.map_err(|e| e.to_string())??;
    pod_reader.await.map_err(|e| e.to_string())??;
    // A change a watch showed before its write's response arrived counts
    // as zero.
    let pending = pending.lock().expect("changes");
    type At = fn(&Change) -> Option<Instant>;
    let between = |from: At, to: At| -> Vec<Duration> {
        pending
            .values()
            .filter_map(|c| Some(to(c)?.saturating_duration_since(from(c)?)))
            .collect()
    };
    let latencies = between(|c| c.answered, |c| c.seen);
    let max = latencies.iter().max().copied().unwrap_or_default();
    let pod_watch = summary(between(|c| c.answered, |c| c.pod_seen));
    // The controllers' share: from the pod event to the slice event.
    let controller = summary(between(|c| c.pod_seen, |c| c.seen));
    let mut figures = summary(latencies);
    for (name, part) in [("pod_watch", pod_watch), ("pod_to_slice", controller)] {
        figures[format!("{name}_p50_ms")] = part["p50_ms"].clone();
        figures[format!("{name}_p99_ms")] = part["p99_ms"].clone();
    }
    figures["scenario"] = json!("endpoints");
    figures["services"] = json!(services);
    figures["pods"] = json!(pods);
    figures["changes_per_s"] = json!(rate);
    figures["max_ms"] = json!(round3(max.as_secs_f64() * 1e3));
    figures["setup_to_settled_s"] = json!(round3(settled_s));
    Ok(figures)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
