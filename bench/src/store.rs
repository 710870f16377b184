//! Scenario `store`: durable writes against Skiff's sled store and against
//! etcd in the same run, watch fan-out, and the time to open a large store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use skiff_store::{HistoryLimits, MvccStore, Preconditions, Store};

use crate::etcd::Etcd;
use crate::stats::{collect, round3, summary};

const WRITER_COUNTS: [usize; 3] = [1, 16, 64];
const WATCHERS: usize = 1_000;
const WATCHED_WRITES: usize = 200;
const OPEN_OBJECTS: usize = 100_000;

/// Something that takes durable, preconditioned writes and says the
/// revision each one got.
pub trait Target: Send + Sync + 'static {
    /// Creates `key`, failing if it exists.
    fn create(
        &self,
        key: &str,
        value: Bytes,
    ) -> impl std::future::Future<Output = Result<u64, String>> + Send;
    /// Replaces `key` if its last write was at `revision_now`.
    fn update(
        &self,
        key: &str,
        value: Bytes,
        revision_now: u64,
    ) -> impl std::future::Future<Output = Result<u64, String>> + Send;
}

impl Target for MvccStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<u64, String> {
        let created = Store::create(self, key, value)
            .await
            .map_err(|e| e.to_string())?;
        Ok(created.mod_revision)
    }

    async fn update(&self, key: &str, value: Bytes, revision_now: u64) -> Result<u64, String> {
        let preconditions = Preconditions {
            resource_version: Some(revision_now),
            uid: None,
        };
        let updated = self
            .guaranteed_update(key, preconditions, Box::new(move |_| Ok(value.clone())))
            .await
            .map_err(|e| e.to_string())?;
        Ok(updated.mod_revision)
    }
}

/// A ~1 KiB JSON object, like a small Pod.
fn object(key: &str, generation: u64) -> Bytes {
    let pad = "x".repeat(900);
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{key}","generation":{generation}}},"data":{{"pad":"{pad}"}}}}"#
    ))
}

/// `writers` tasks each alternate creating a new key and updating the one
/// they created before, for `duration`; returns writes/s and latencies.
async fn write_load<T: Target>(
    target: Arc<T>,
    prefix: &str,
    writers: usize,
    duration: Duration,
) -> Result<Value, String> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let target = target.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut last: Option<(String, u64)> = None;
                for n in 0u64.. {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let begun = Instant::now();
                    last = match last.take() {
                        Some((key, revision)) if n % 2 == 1 => {
                            let revision = target.update(&key, object(&key, n), revision).await?;
                            Some((key, revision))
                        }
                        _ => {
                            let key = format!("{prefix}{w}/{n}");
                            let revision = target.create(&key, object(&key, n)).await?;
                            Some((key, revision))
                        }
                    };
                    latencies.push(begun.elapsed());
                }
                Ok::<_, String>(latencies)
            })
        })
        .collect();
    collect(tasks, started, "writes_per_s").await
}

/// One watch per watcher on a prefix; sequential writes; how long after
/// each write was acknowledged its event reached each watcher.
async fn watch_fanout(dir: &std::path::Path) -> Result<Value, String> {
    let store =
        Arc::new(MvccStore::open(dir, HistoryLimits::default()).map_err(|e| e.to_string())?);
    let from = store.current_revision();
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|_| {
            let mut watch = store
                .watch("/watch/", Some(from))
                .map_err(|e| e.to_string())?;
            Ok(tokio::spawn(async move {
                let mut received = Vec::with_capacity(WATCHED_WRITES);
                while received.len() < WATCHED_WRITES {
                    match watch.next().await {
                        Some(Ok(event)) => received.push((event.revision, Instant::now())),
                        _ => break,
                    }
                }
                received
            }))
        })
        .collect::<Result<_, String>>()?;
    let mut acknowledged = Vec::with_capacity(WATCHED_WRITES);
    for n in 0..WATCHED_WRITES {
        let key = format!("/watch/{n}");
        let created = Store::create(&*store, &key, object(&key, 0))
            .await
            .map_err(|e| e.to_string())?;
        acknowledged.push((created.mod_revision, Instant::now()));
        // Writes arrive one at a time, as a controller's would.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut latencies = Vec::with_capacity(WATCHERS * WATCHED_WRITES);
    for watcher in watchers {
        let received = tokio::time::timeout(Duration::from_secs(60), watcher)
            .await
            .map_err(|_| "watchers did not receive every event in 60 s")?
            .map_err(|e| e.to_string())?;
        if received.len() != WATCHED_WRITES {
            return Err(format!(
                "a watcher saw {} of {WATCHED_WRITES} events",
                received.len()
            ));
        }
        for ((revision, at), (acked_revision, acked_at)) in received.into_iter().zip(&acknowledged)
        {
            if revision != *acked_revision {
                return Err(format!(
                    "a watcher saw revision {revision} where {acked_revision} was due"
                ));
            }
            latencies.push(at.saturating_duration_since(*acked_at));
        }
    }
    let mut figures = summary(latencies);
    figures["watchers"] = json!(WATCHERS);
    Ok(figures)
}

/// Fills a store with `OPEN_OBJECTS` objects, closes it and times opening it.
async fn open_time(dir: &std::path::Path) -> Result<Value, String> {
    {
        let store =
            Arc::new(MvccStore::open(dir, HistoryLimits::default()).map_err(|e| e.to_string())?);
        let tasks: Vec<_> = (0..64)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in (w..OPEN_OBJECTS).step_by(64) {
                        let key = format!("/registry/configmaps/default/cm-{n}");
                        Store::create(&*store, &key, object(&key, 0))
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
    }
    let started = Instant::now();
    let store = MvccStore::open(dir, HistoryLimits::default()).map_err(|e| e.to_string())?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    let objects = store
        .list("/registry/", skiff_store::ListOptions::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .len();
    Ok(json!({ "objects": objects, "open_ms": round3(open_ms) }))
}

pub async fn run(duration: Duration) -> Result<Value, String> {
    let mut skiff = serde_json::Map::new();
    let mut etcd = serde_json::Map::new();
    let mut ratio = serde_json::Map::new();
    let server = Etcd::start().await?;
    let client = Arc::new(server.client.clone());
    for writers in WRITER_COUNTS {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let store = Arc::new(
            MvccStore::open(dir.path(), HistoryLimits::default()).map_err(|e| e.to_string())?,
        );
        eprintln!("store: {writers} writers against skiff");
        let ours = write_load(store, "/bench/", writers, duration).await?;
        eprintln!("store: {writers} writers against etcd");
        let theirs = write_load(
            client.clone(),
            &format!("/bench-{writers}/"),
            writers,
            duration,
        )
        .await?;
        let r = ours["writes_per_s"].as_f64().unwrap_or(0.0)
            / theirs["writes_per_s"].as_f64().unwrap_or(f64::NAN);
        ratio.insert(writers.to_string(), json!(round3(r)));
        skiff.insert(writers.to_string(), ours);
        etcd.insert(writers.to_string(), theirs);
    }
    drop(server);
    eprintln!("store: watch fan-out to {WATCHERS} watchers");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let watch = watch_fanout(dir.path()).await?;
    eprintln!("store: opening a store of {OPEN_OBJECTS} objects");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let open = open_time(dir.path()).await?;
    Ok(json!({
        "scenario": "store",
        "seconds_per_phase": duration.as_secs(),
        "value_bytes": object("/bench/0/0", 0).len(),
        "skiff": skiff,
        "etcd": etcd,
        "writes_ratio_skiff_over_etcd": ratio,
        "watch_after_ack": watch,
        "open": open,
    }))
}
