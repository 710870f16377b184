//! The conformance suite: every backend must pass every case.
//!
//! [`conformance_suite!`] expands into one test per case for a factory
//! `fn(HistoryLimits) -> (impl Store, guard)`; the guard (a temporary
//! directory, say) lives as long as the test.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{EventKind, Filter, ListOptions, Object, Preconditions, Store, StoreError, UpdateFn};

/// How long a case waits for something that should happen at once.
const DEADLINE: Duration = Duration::from_secs(20);

fn json(n: u64) -> Bytes {
    Bytes::from(format!(r#"{{"metadata":{{"uid":"uid-{n}"}},"n":{n}}}"#))
}

fn counter(object: &Object) -> u64 {
    let value: serde_json::Value = serde_json::from_slice(&object.value).expect("json");
    value["n"].as_u64().expect("n")
}

fn increment<'a>() -> UpdateFn<'a> {
    Box::new(|current| Ok(json(counter(current) + 1)))
}

fn at(revision: u64) -> Preconditions {
    Preconditions {
        resource_version: Some(revision),
        uid: None,
    }
}

async fn list_all<S: Store>(
    store: &S,
    prefix: &str,
    revision: Option<u64>,
) -> BTreeMap<String, Object> {
    let options = ListOptions {
        revision,
        ..ListOptions::default()
    };
    let list = store.list(prefix, options).await.expect("list");
    list.items.into_iter().map(|o| (o.key.clone(), o)).collect()
}

pub(crate) async fn create_get_update_delete<S: Store>(store: S) {
    let start = store.current_revision();
    let created = store.create("/t/a", json(1)).await.unwrap();
    assert_eq!(created.mod_revision, start + 1);
    assert_eq!(created.create_revision, start + 1);
    assert_eq!(store.get("/t/a").await.unwrap(), created);
    assert!(matches!(
        store.create("/t/a", json(2)).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let updated = store
        .guaranteed_update("/t/a", at(created.mod_revision), increment())
        .await
        .unwrap();
    assert_eq!(counter(&updated), 2);
    assert_eq!(updated.mod_revision, start + 2);
    assert_eq!(updated.create_revision, start + 1);
    assert_eq!(store.current_revision(), start + 2);

    // Writing back the same bytes takes no revision.
    let same = store
        .guaranteed_update(
            "/t/a",
            Preconditions::default(),
            Box::new(|c| Ok(c.value.clone())),
        )
        .await
        .unwrap();
    assert_eq!(same, updated);
    assert_eq!(store.current_revision(), start + 2);
    let stats = store.stats();
    assert_eq!(
        (stats.objects, stats.object_bytes),
        (1, updated.value.len() as u64)
    );
    assert!(stats.history_events >= 2);

    // The update function's own error comes back unchanged.
    let refused = store
        .guaranteed_update(
            "/t/a",
            Preconditions::default(),
            Box::new(|_| Err(StoreError::Rejected("no".into()))),
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Rejected(_))));
    assert!(matches!(
        store
            .guaranteed_update("/t/missing", Preconditions::default(), increment())
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let deleted = store
        .delete("/t/a", Preconditions::default())
        .await
        .unwrap();
    assert_eq!(store.stats().objects, 0);
    assert_eq!(deleted, updated);
    assert!(matches!(
        store.get("/t/a").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete("/t/a", Preconditions::default()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.current_revision(), start + 3);

    // A deleted key can be created again, with a new create revision.
    let again = store.create("/t/a", json(7)).await.unwrap();
    assert_eq!(again.create_revision, start + 4);
}

pub(crate) async fn deletes_honour_preconditions<S: Store>(store: S) {
    let created = store.create("/t/a", json(1)).await.unwrap();
    let wrong_uid = Preconditions {
        uid: Some("uid-2".into()),
        resource_version: None,
    };
    assert!(matches!(
        store.delete("/t/a", wrong_uid).await,
        Err(StoreError::Conflict { .. })
    ));
    let stale = at(created.mod_revision - 1);
    assert!(matches!(
        store.delete("/t/a", stale).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.get("/t/a").await.unwrap(), created);
    let right = Preconditions {
        uid: Some("uid-1".into()),
        resource_version: Some(created.mod_revision),
    };
    assert_eq!(store.delete("/t/a", right).await.unwrap(), created);
    assert!(matches!(
        store.get("/t/a").await,
        Err(StoreError::NotFound { .. })
    ));
}

pub(crate) async fn concurrent_updates_conflict_exactly_and_lose_nothing<S: Store>(store: S) {
    let store = Arc::new(store);
    let created = store.create("/t/counter", json(0)).await.unwrap();

    // Sixteen writers that all read the same revision: one wins.
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .guaranteed_update("/t/counter", at(created.mod_revision), increment())
                    .await
            })
        })
        .collect();
    let mut won = 0;
    let mut conflicts = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!((won, conflicts), (1, 15));

    // Without preconditions every increment lands exactly once.
    let before = store.current_revision();
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    store
                        .guaranteed_update("/t/counter", Preconditions::default(), increment())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(counter(&store.get("/t/counter").await.unwrap()), 801);
    assert_eq!(store.current_revision(), before + 800);
}

/// Writes `count` changes spread over keys of `prefix`: creates, updates
/// and deletes, from `writers` concurrent tasks.
async fn churn<S: Store>(store: &Arc<S>, prefix: &str, writers: u64, count: u64) {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                for i in 0..count {
                    let key = format!("{prefix}{w}-{}", i % 7);
                    match store.get(&key).await {
                        Err(_) => drop(store.create(&key, json(i)).await.unwrap()),
                        Ok(_) if i % 5 == 0 => {
                            drop(store.delete(&key, Preconditions::default()).await.unwrap())
                        }
                        Ok(_) => {
                            store
                                .guaranteed_update(
                                    &key,
                                    Preconditions::default(),
                                    Box::new(move |_| Ok(json(i))),
                                )
                                .await
                                .unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

pub(crate) async fn every_watcher_sees_every_event_in_order<S: Store>(store: S) {
    let store = Arc::new(store);
    let from = store.current_revision();
    let mut watches: Vec<_> = (0..8)
        .map(|_| store.watch("/w/", Some(from)).unwrap())
        .collect();
    churn(&store, "/w/", 4, 100).await;
    let total = store.current_revision() - from;
    assert_eq!(total, 400);
    let mut seen = Vec::new();
    for watch in &mut watches {
        let mut revisions = Vec::new();
        while (revisions.len() as u64) < total {
            let event = tokio::time::timeout(DEADLINE, watch.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            revisions.push(event.revision);
        }
        assert_eq!(revisions, (from + 1..=from + total).collect::<Vec<_>>());
        seen.push(revisions);
    }

    // A watcher that stops and reconnects from its last revision sees the
    // rest exactly once.
    let mut first = store.watch("/w/", Some(from)).unwrap();
    let mut revisions = Vec::new();
    for _ in 0..150 {
        revisions.push(first.next().await.unwrap().unwrap().revision);
    }
    drop(first);
    let mut resumed = store.watch("/w/", revisions.last().copied()).unwrap();
    while (revisions.len() as u64) < total {
        let event = tokio::time::timeout(DEADLINE, resumed.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        revisions.push(event.revision);
    }
    assert_eq!(revisions, seen[0]);
}

pub(crate) async fn list_then_watch_sees_exactly_later_writes<S: Store>(store: S) {
    let store = Arc::new(store);
    churn(&store, "/l/", 2, 30).await;
    let started = store.current_revision();
    let writing = {
        let store = store.clone();
        tokio::spawn(async move { churn(&store, "/l/", 4, 60).await })
    };
    // List once the concurrent writes are under way, not before them.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.current_revision() < started + 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writers never started"
        );
        tokio::task::yield_now().await;
    }
    let listed = store.list("/l/", ListOptions::default()).await.unwrap();
    let mut state: BTreeMap<_, _> = listed
        .items
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
    let mut watch = store.watch("/l/", Some(listed.revision)).unwrap();
    writing.await.unwrap();
    let end = store.current_revision();
    let mut last = listed.revision;
    while last < end {
        let event = tokio::time::timeout(DEADLINE, watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(event.revision, last + 1, "no gap, no duplicate");
        last = event.revision;
        match event.kind {
            EventKind::Deleted => assert!(state.remove(&event.object.key).is_some()),
            EventKind::Added => assert!(state
                .insert(event.object.key.clone(), event.object.clone())
                .is_none()),
            EventKind::Modified => {
                assert_eq!(state.get(&event.object.key), event.prev.as_ref());
                state.insert(event.object.key.clone(), event.object.clone());
            }
        }
    }
    assert_eq!(state, list_all(&*store, "/l/", None).await);
}

pub(crate) async fn pagination_reads_one_revision_while_writes_go_on<S: Store>(store: S) {
    let store = Arc::new(store);
    for i in 0..300 {
        store.create(&format!("/p/{i:03}"), json(i)).await.unwrap();
    }
    let writing = {
        let store = store.clone();
        tokio::spawn(async move { churn(&store, "/p/", 4, 50).await })
    };
    let mut pages = Vec::new();
    let mut options = ListOptions {
        limit: 37,
        ..ListOptions::default()
    };
    loop {
        let page = store.list("/p/", options.clone()).await.unwrap();
        assert!(page.items.len() <= 37);
        let token = page.continue_token.clone();
        pages.push(page);
        tokio::task::yield_now().await;
        match token {
            Some(token) => options.continue_token = Some(token),
            None => break,
        }
    }
    writing.await.unwrap();
    let revision = pages[0].revision;
    assert!(pages.iter().all(|p| p.revision == revision));
    let paged: Vec<Object> = pages.into_iter().flat_map(|p| p.items).collect();
    let keys: Vec<&str> = paged.iter().map(|o| o.key.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "in key order, none twice");
    let whole: Vec<Object> = list_all(&*store, "/p/", Some(revision))
        .await
        .into_values()
        .collect();
    assert_eq!(paged, whole);
    assert!(
        store.current_revision() > revision,
        "writes went on meanwhile"
    );

    // A filtered list fills each page with matching objects only.
    let odd = Filter(Arc::new(|o: &Object| counter(o) % 2 == 1));
    let mut options = ListOptions {
        limit: 10,
        revision: Some(revision),
        filter: Some(odd.clone()),
        ..ListOptions::default()
    };
    let mut filtered = Vec::new();
    loop {
        let page = store.list("/p/", options.clone()).await.unwrap();
        assert!(page.items.len() == 10 || page.continue_token.is_none());
        filtered.extend(page.items);
        match page.continue_token {
            Some(token) => options.continue_token = Some(token),
            None => break,
        }
    }
    let expected: Vec<Object> = whole.into_iter().filter(|o| odd.matches(o)).collect();
    assert_eq!(filtered, expected);
}

pub(crate) async fn compacted_revisions_are_gone<S: Store>(store: S) {
    store.create("/c/a", json(1)).await.unwrap();
    store.create("/c/b", json(2)).await.unwrap();
    let before = store.current_revision();
    store
        .delete("/c/b", Preconditions::default())
        .await
        .unwrap();
    store
        .guaranteed_update("/c/a", Preconditions::default(), increment())
        .await
        .unwrap();
    let compact_at = store.current_revision();
    store.create("/c/c", json(3)).await.unwrap();

    // Old revisions are readable until compacted.
    assert_eq!(list_all(&store, "/c/", Some(before)).await.len(), 2);
    store.compact(compact_at).await.unwrap();
    assert_eq!(store.compacted_revision(), compact_at);
    let old = ListOptions {
        revision: Some(compact_at - 1),
        ..ListOptions::default()
    };
    assert!(matches!(
        store.list("/c/", old).await,
        Err(StoreError::Gone { .. })
    ));
    assert!(matches!(
        store.watch("/c/", Some(compact_at - 1)),
        Err(StoreError::Gone { .. })
    ));

    // The compacted revision itself and everything after it remain.
    let at_compaction = list_all(&store, "/c/", Some(compact_at)).await;
    assert_eq!(at_compaction.keys().collect::<Vec<_>>(), ["/c/a"]);
    assert_eq!(counter(&at_compaction["/c/a"]), 2);
    let mut watch = store.watch("/c/", Some(compact_at)).unwrap();
    let event = watch.next().await.unwrap().unwrap();
    assert_eq!(
        (event.kind, event.object.key.as_str()),
        (EventKind::Added, "/c/c")
    );
    assert_eq!(list_all(&store, "/c/", None).await.len(), 2);

    // Compacting again, or to an older revision, changes nothing; the
    // future cannot be compacted.
    store.compact(compact_at - 1).await.unwrap();
    assert_eq!(store.compacted_revision(), compact_at);
    let future = store.current_revision() + 1;
    assert!(matches!(
        store.compact(future).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

pub(crate) async fn prefixes_are_isolated<S: Store>(store: S) {
    let from = store.current_revision();
    let mut watch = store.watch("/a/", Some(from)).unwrap();
    for key in ["/ab/1", "/a/1", "/a/b/2", "/b/1", "/a"] {
        store.create(key, json(1)).await.unwrap();
    }
    let keys: Vec<String> = list_all(&store, "/a/", None).await.into_keys().collect();
    assert_eq!(keys, ["/a/1", "/a/b/2"]);
    let mut watched = Vec::new();
    for _ in 0..2 {
        watched.push(watch.next().await.unwrap().unwrap().object.key.clone());
    }
    assert_eq!(watched, ["/a/1", "/a/b/2"]);
    // Nothing else arrives for this prefix.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), watch.next())
            .await
            .is_err()
    );
}

pub(crate) async fn bad_revisions_and_tokens_are_refused<S: Store>(store: S) {
    store.create("/r/a", json(1)).await.unwrap();
    let future = ListOptions {
        revision: Some(store.current_revision() + 1),
        ..ListOptions::default()
    };
    assert!(matches!(
        store.list("/r/", future).await,
        Err(StoreError::FutureRevision { .. })
    ));
    for token in ["garbage", "x:/r/a", "1:/other/a"] {
        let options = ListOptions {
            continue_token: Some(token.into()),
            ..ListOptions::default()
        };
        assert!(matches!(
            store.list("/r/", options).await,
            Err(StoreError::InvalidContinue(_))
        ));
    }
}

pub(crate) async fn history_is_compacted_in_the_background<S: Store>(store: S) {
    // The factory gave this store a history of at most 100 events.
    for i in 0..300 {
        store.create(&format!("/h/{i}"), json(i)).await.unwrap();
    }
    let current = store.current_revision();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.compacted_revision() < current - 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "history never compacted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(
        store.watch("/h/", Some(1)),
        Err(StoreError::Gone { .. })
    ));
    assert_eq!(list_all(&store, "/h/", None).await.len(), 300);
}

pub(crate) async fn a_slow_watcher_catches_up_from_history<S: Store>(store: S) {
    let from = store.current_revision();
    let mut watch = store.watch("/s/", Some(from)).unwrap();
    // More batches than the watch channel holds, while nobody reads.
    for i in 0..1500u64 {
        store.create(&format!("/s/{i}"), json(i)).await.unwrap();
    }
    for expected in from + 1..=from + 1500 {
        let event = tokio::time::timeout(DEADLINE, watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(event.revision, expected);
    }
}

pub(crate) async fn a_watcher_behind_compacted_history_is_gone<S: Store>(store: S) {
    // The factory gave this store a history of at most 100 events.
    let from = store.current_revision();
    let mut watch = store.watch("/g/", Some(from)).unwrap();
    for i in 0..1500u64 {
        store.create(&format!("/g/{i}"), json(i)).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while store.compacted_revision() < from + 1400 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "history never compacted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut seen = HashSet::new();
    loop {
        match tokio::time::timeout(DEADLINE, watch.next()).await.unwrap() {
            Some(Ok(event)) => assert!(seen.insert(event.revision)),
            Some(Err(StoreError::Gone { .. })) => break,
            other => panic!("expected Gone, got {other:?}"),
        }
    }
    assert!(watch.next().await.is_none(), "the stream ends after Gone");
}

/// One test per case for the backend that `$factory` makes.
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance::conformance_suite!(@cases $factory,
            create_get_update_delete: default,
            deletes_honour_preconditions: default,
            concurrent_updates_conflict_exactly_and_lose_nothing: default,
            every_watcher_sees_every_event_in_order: default,
            list_then_watch_sees_exactly_later_writes: default,
            pagination_reads_one_revision_while_writes_go_on: default,
            compacted_revisions_are_gone: default,
            prefixes_are_isolated: default,
            bad_revisions_and_tokens_are_refused: default,
            history_is_compacted_in_the_background: short,
            a_slow_watcher_catches_up_from_history: default,
            a_watcher_behind_compacted_history_is_gone: short,
        );
    };
    (@cases $factory:expr, $($case:ident: $limits:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let limits = $crate::conformance::limits(stringify!($limits));
                let (store, _guard) = ($factory)(limits);
                $crate::conformance::$case(store).await;
            }
        )*
    };
}
pub(crate) use conformance_suite;

/// The history limits a case runs with: `short` keeps 100 events.
pub(crate) fn limits(name: &str) -> crate::HistoryLimits {
    match name {
        "short" => crate::HistoryLimits {
            max_events: 100,
            ..crate::HistoryLimits::default()
        },
        _ => crate::HistoryLimits::default(),
    }
}
