//! Durability and space, tested for real against the sled backend: a child
//! process killed with SIGKILL mid-write loses no acknowledged write, and
//! constant churn leaves the data directory bounded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_store::{HistoryLimits, ListOptions, MvccStore, Preconditions, Store};

const CHILD_DIR: &str = "SKIFF_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "SKIFF_CRASH_CHILD_ROUND";
const WRITERS: u64 = 8;

/// The exact bytes of version `version` of `key`: a JSON object whose size
/// varies with the key, so that a torn or mixed-up value cannot pass.
fn value_of(key: &str, version: u64) -> Bytes {
    let pad = "x".repeat(key.len() * 37 % 900);
    Bytes::from(format!(
        r#"{{"key":"{key}","version":{version},"pad":"{pad}"}}"#
    ))
}

fn version_of(value: &[u8]) -> u64 {
    let parsed: serde_json::Value = serde_json::from_slice(value).expect("a whole JSON object");
    parsed["version"].as_u64().expect("a version")
}

/// Prints one line to the real standard output, past the test harness's
/// capture (which only takes the `print!` macros), at once.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).unwrap();
}

/// The child's side of `a_killed_writer_loses_no_acknowledged_write`: when
/// started by it (the environment names a data directory), writes as fast
/// as it can and prints every acknowledged write until it is killed (or, as
/// a bound, for at most 30 s). Run any other way, it returns at once.
#[test]
fn crash_writer_child() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ROUND)) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let store = Arc::new(MvccStore::open(Path::new(&dir), HistoryLimits::default()).unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        // The harness has printed "test crash_writer_child ... " without a
        // line end: end its line first.
        say("");
        say("ready");
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                let round = round.clone();
                tokio::spawn(async move {
                    for n in 0u64.. {
                        if Instant::now() > deadline {
                            break;
                        }
                        let key = format!("/crash/{round}/{w}/{n}");
                        store.create(&key, value_of(&key, 1)).await.unwrap();
                        say(&format!("{key} 1"));
                        // Every other step also updates an earlier key.
                        if n % 2 == 1 {
                            let key = format!("/crash/{round}/{w}/{}", n / 2);
                            let update = Box::new(|current: &skiff_store::Object| {
                                Ok(value_of(&current.key, version_of(&current.value) + 1))
                            });
                            let updated = store
                                .guaranteed_update(&key, Preconditions::default(), update)
                                .await
                                .unwrap();
                            say(&format!("{key} {}", version_of(&updated.value)));
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

fn acknowledged_by_killed_child(
    dir: &Path,
    round: usize,
    delay: Duration,
) -> BTreeMap<String, u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_writer_child", "--exact", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait (bounded by the child's own start) until it writes.
    loop {
        match lines.next() {
            Some(Ok(line)) if line == "ready" => break,
            Some(Ok(_)) => continue,
            other => panic!("the child ended before it was ready: {other:?}"),
        }
    }
    // The kill lands at a moment chosen per round; the point of the pause.
    std::thread::sleep(delay);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut acknowledged = BTreeMap::new();
    for line in lines {
        let line = line.unwrap();
        if let Some((key, version)) = line.split_once(' ') {
            if let Ok(version) = version.parse::<u64>() {
                let entry = acknowledged.entry(key.to_owned()).or_insert(0);
                *entry = version.max(*entry);
            }
        }
    }
    acknowledged
}

#[tokio::test]
async fn a_killed_writer_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut total = 0;
    for round in 0..20 {
        let delay = Duration::from_millis(rng.u64(5..400));
        let acknowledged = acknowledged_by_killed_child(dir.path(), round, delay);
        total += acknowledged.len();

        let store = MvccStore::open(dir.path(), HistoryLimits::default())
            .unwrap_or_else(|e| panic!("round {round}: reopen after kill -9 failed: {e}"));
        for (key, version) in &acknowledged {
            let object = store.get(key).await.unwrap_or_else(|e| {
                panic!("round {round}: acknowledged {key} v{version} lost: {e}")
            });
            let stored = version_of(&object.value);
            assert!(
                stored >= *version,
                "round {round}: {key} went back from v{version} to v{stored}"
            );
        }
        // Every object in the store is whole: exactly the bytes of its version.
        let all = store.list("/crash/", ListOptions::default()).await.unwrap();
        for object in &all.items {
            assert_eq!(
                object.value,
                value_of(&object.key, version_of(&object.value)),
                "torn {}",
                object.key
            );
        }
        assert!(
            all.items.len() >= total,
            "round {round}: fewer objects than acknowledged"
        );
    }
    assert!(
        total > 1000,
        "the children acknowledged only {total} writes in 20 rounds"
    );
}

/// The bytes under `path`. The store runs while this walks it: a file sled
/// removes between the listing and its metadata counts as gone; any other
/// error fails the test.
fn directory_size(path: &Path) -> u64 {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let entries = match std::fs::read_dir(path) {
        Err(e) if gone(&e) => return 0,
        listing => listing.unwrap(),
    };
    entries
        .map(
            |entry| match entry.and_then(|entry| Ok((entry.metadata()?, entry.path()))) {
                Err(e) if gone(&e) => 0,
                Err(e) => panic!("{}: {e}", path.display()),
                Ok((meta, sub)) if meta.is_dir() => directory_size(&sub),
                Ok((meta, _)) => meta.len(),
            },
        )
        .sum()
}

/// 200,000 updates to 1,000 keys of ~1 KiB, with a history of at most
/// 10,000 events. What must be kept is the live data (1,000 x ~1 KiB) and the
/// history (10,000 x ~1 KiB): about 11 MiB. sled is log-structured and
/// rewrites a segment once it is mostly garbage, so it holds up to a few
/// times its live data; the bound allows 4x the kept bytes plus 16 MiB of
/// fixed overhead. Unbounded growth would reach the ~200 MiB written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_churn_keeps_the_data_directory_bounded() {
    const KEYS: u64 = 1_000;
    const UPDATES: u64 = 200_000;
    const WRITERS: u64 = 50;
    let limits = HistoryLimits {
        max_events: 10_000,
        max_age: Duration::from_secs(300),
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MvccStore::open(dir.path(), limits.clone()).unwrap());
    let value = |key: &str, n: u64| {
        Bytes::from(format!(
            r#"{{"key":"{key}","n":{n},"pad":"{}"}}"#,
            "p".repeat(1000)
        ))
    };
    for k in 0..KEYS {
        let key = format!("/churn/{k}");
        store.create(&key, value(&key, 0)).await.unwrap();
    }
    let started = Instant::now();
    let mut peak = 0;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..UPDATES / WRITERS {
                    // Each writer owns 20 keys, so updates rarely conflict.
                    let key = format!("/churn/{}", w * (KEYS / WRITERS) + n % (KEYS / WRITERS));
                    let update = Box::new(move |current: &skiff_store::Object| {
                        Ok(value(&current.key, n + 1))
                    });
                    store
                        .guaranteed_update(&key, Preconditions::default(), update)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        while !writer.is_finished() {
            peak = peak.max(directory_size(dir.path()));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        writer.await.unwrap();
    }
    let written = store.current_revision();
    assert_eq!(written, KEYS + UPDATES);
    drop(store);
    let after = directory_size(dir.path());
    let kept_bytes = (KEYS + limits.max_events as u64) * 1_100;
    let bound = 4 * kept_bytes + (16 << 20);
    eprintln!(
        "churn: {UPDATES} updates in {:.1?}; data directory peak {} KiB, after {} KiB, bound {} KiB",
        started.elapsed(),
        peak >> 10,
        after >> 10,
        bound >> 10
    );
    assert!(
        peak.max(after) <= bound,
        "data directory grew to {} bytes (bound {bound})",
        peak.max(after)
    );

    // And it reopens with every key at its last value.
    let store = MvccStore::open(dir.path(), limits).unwrap();
    assert_eq!(store.current_revision(), written);
    let all = store.list("/churn/", ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len() as u64, KEYS);
}
