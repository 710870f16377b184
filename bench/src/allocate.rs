//! Scenario `allocate`: Services created as fast as 64 HTTPS clients can,
//! each given a ClusterIP (every fifth a node port too) by the real
//! `skiff server`; then every allocation is checked to be held once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::server::{http, skiff_binary, start_with};
use crate::stats::collect;

const CLIENTS: usize = 64;

/// Creates `count` Services (each selecting pods, as a user's do, so the
/// endpoints controllers answer each with their objects too) and checks
/// that no ClusterIP or node port was given twice.
pub async fn run(count: usize) -> Result<Value, String> {
    let binary = skiff_binary()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = start_with(&binary, dir.path(), &["--nodes", "0"])?;
    let client = http(&server.ca)?;
    let url = Arc::new(format!("{}/api/v1/namespaces/default/services", server.url));
    let next = Arc::new(AtomicUsize::new(0));
    eprintln!("allocate: {count} Services from {CLIENTS} clients");
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url, token, next) = (
                client.clone(),
                url.clone(),
                server.token.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return Ok(latencies);
                    }
                    let kind = if n % 5 == 0 { "NodePort" } else { "ClusterIP" };
                    let body = json!({"metadata": {"name": format!("s{n}")}, "spec": {"type": kind, "selector": {"app": format!("a{n}")}, "ports": [{"port": 80, "targetPort": 8080}]}});
                    let began = Instant::now();
                    let response = client
                        .post(url.as_str())
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if response.status() != 201 {
                        return Err(format!("create answered {}", response.status()));
                    }
                    latencies.push(began.elapsed());
                }
            })
        })
        .collect();
    let figures = collect(tasks, started, "creates_per_s").await?;

    let get = |path: String| {
        let (client, token) = (client.clone(), server.token.clone());
        async move {
            let response = client
                .get(path)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())
        }
    };
    let services = get(format!("{}/api/v1/services", server.url)).await?;
    let (mut ips, mut ports) = (HashSet::new(), HashSet::new());
    for service in services["items"].as_array().ok_or("no Service list")? {
        let spec = &service["spec"];
        if !ips.insert(spec["clusterIP"].to_string()) {
            return Err(format!("ClusterIP {} given twice", spec["clusterIP"]));
        }
        for port in spec["ports"].as_array().into_iter().flatten() {
            if let Some(node_port) = port["nodePort"].as_u64() {
                if !ports.insert(node_port) {
                    return Err(format!("node port {node_port} given twice"));
                }
            }
        }
    }
    let addresses = get(format!(
        "{}/apis/networking.k8s.io/v1/ipaddresses",
        server.url
    ))
    .await?;
    let recorded = addresses["items"].as_array().map_or(0, Vec::len);
    if recorded != ips.len() {
        return Err(format!(
            "{recorded} IPAddresses for {} ClusterIPs",
            ips.len()
        ));
    }
    Ok(json!({
        "scenario": "allocate",
        "services": count,
        "clients": CLIENTS,
        "creates": figures,
        "unique_cluster_ips": ips.len(),
        "unique_node_ports": ports.len(),
        "ipaddresses_recorded": recorded,
    }))
}
