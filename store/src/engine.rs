//! The multi-version index, the write path with group commit, reads at a
//! revision, and compaction: one engine over any [`Backend`].

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::backend::{Backend, MemoryBackend, SledBackend};
use crate::error::{Result, StoreError};
use crate::record::Record;
use crate::watch::{Batch, WatchStream};
use crate::{
    Event, EventKind, HistoryLimits, ListOptions, ListResult, Object, Preconditions, Stats, Store,
    UpdateFn,
};

/// How often the background thread looks for history to compact when no
/// writes arrive, and at most how often it checkpoints the durable revision.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Batches of events the watch channel holds before a slow watcher lags (it
/// then catches up from the history, so this bounds memory, not correctness).
const WATCH_CHANNEL: usize = 1024;
/// sled's page cache: the engine keeps every live object in memory itself.
const SLED_CACHE_BYTES: u64 = 32 << 20;

/// One version of a key; `value` is `None` for a deletion.
#[derive(Debug, Clone)]
struct Version {
    mod_revision: u64,
    create_revision: u64,
    value: Option<Bytes>,
}

impl Version {
    fn object(&self, key: &str) -> Option<Object> {
        self.value.as_ref().map(|value| Object {
            key: key.to_owned(),
            value: value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
        })
    }
}

/// The object `key` was at `revision`, if it existed then.
fn at_revision(key: &str, versions: &[Version], revision: u64) -> Option<Object> {
    versions
        .iter()
        .rev()
        .find(|v| v.mod_revision <= revision)
        .and_then(|v| v.object(key))
}

/// The versions of every key, oldest first: the latest at or before the
/// compacted revision (if it is not a deletion), then every later one.
#[derive(Default)]
struct State {
    keys: BTreeMap<String, Vec<Version>>,
    /// The events of revisions `compacted + 1 ..= current`, in order.
    log: VecDeque<(Arc<Event>, Instant)>,
    /// The last revision written (perhaps not yet durable).
    current: u64,
    /// The last revision made durable: what readers and watchers see.
    durable: u64,
    compacted: u64,
    failed: Option<String>,
}

impl State {
    fn version_at(&self, key: &str, revision: u64) -> Option<Object> {
        at_revision(key, self.keys.get(key)?, revision)
    }

    fn latest(&self, key: &str) -> Option<Object> {
        self.keys.get(key)?.last()?.object(key)
    }

    /// The events after `after` (up to the durable revision) under `prefix`.
    fn events_after(&self, prefix: &str, after: u64) -> Result<VecDeque<Arc<Event>>> {
        if after < self.compacted {
            return Err(StoreError::Gone {
                requested: after,
                compacted: self.compacted,
            });
        }
        let start = (after - self.compacted) as usize;
        let end = (self.durable - self.compacted) as usize;
        Ok(self
            .log
            .range(start.min(end)..end)
            .map(|(event, _)| event)
            .filter(|event| event.object.key.starts_with(prefix))
            .cloned()
            .collect())
    }

    /// Adds the version a write makes and its event; returns the event.
    fn apply(&mut self, revision: u64, record: Record, now: Instant) -> Arc<Event> {
        let prev = self.latest(&record.key);
        let versions = self.keys.entry(record.key.clone()).or_default();
        let deleted = record.kind == EventKind::Deleted;
        versions.push(Version {
            mod_revision: revision,
            create_revision: record.create_revision,
            value: (!deleted).then(|| record.value.clone()),
        });
        let value = if deleted {
            prev.as_ref().map(|p| p.value.clone()).unwrap_or_default()
        } else {
            record.value
        };
        let event = Arc::new(Event {
            kind: record.kind,
            revision,
            object: Object {
                key: record.key,
                value,
                create_revision: record.create_revision,
                mod_revision: revision,
            },
            prev,
        });
        self.log.push_back((event.clone(), now));
        self.current = revision;
        event
    }

    /// Drops the history up to `revision`; returns the revisions whose
    /// records the backend may now remove: versions a compacted event
    /// superseded, and compacted deletions.
    fn compact(&mut self, revision: u64) -> Vec<u64> {
        let mut removed = Vec::new();
        while self.compacted < revision {
            let (event, _) = self
                .log
                .pop_front()
                .expect("history holds every uncompacted event");
            self.compacted = event.revision;
            let key = &event.object.key;
            let versions = self.keys.get_mut(key).expect("an event's key is indexed");
            if let Some(prev) = &event.prev {
                debug_assert_eq!(versions[0].mod_revision, prev.mod_revision);
                versions.remove(0);
                removed.push(prev.mod_revision);
            }
            if event.kind == EventKind::Deleted {
                debug_assert_eq!(versions[0].mod_revision, event.revision);
                versions.remove(0);
                removed.push(event.revision);
            }
            if versions.is_empty() {
                self.keys.remove(key);
            }
        }
        removed
    }

    /// The revision the history limits allow compacting up to.
    fn compaction_target(&self, limits: &HistoryLimits, now: Instant) -> u64 {
        let by_count = self.durable.saturating_sub(limits.max_events as u64);
        let kept = (self.durable - self.compacted) as usize;
        let expired = self
            .log
            .range(..kept)
            .take_while(|(_, at)| now.duration_since(*at) > limits.max_age)
            .last()
            .map_or(0, |(event, _)| event.revision);
        by_count.max(expired).max(self.compacted)
    }
}

/// What the background thread has to do.
#[derive(Default)]
struct CommitQueue {
    /// The last revision appended to the backend.
    appended: u64,
    /// The last revision the flush stage wrote out.
    flushed: u64,
    /// Set when the store is dropped: finish what was appended, then stop.
    shutdown: bool,
    /// Cleared when the flush stage has stopped.
    flushing: bool,
}

/// The durable revision, or why no more writes will become durable.
#[derive(Debug, Clone, Default)]
struct Durable {
    revision: u64,
    failed: Option<String>,
}

pub(crate) struct Shared {
    state: RwLock<State>,
    backend: Box<dyn Backend>,
    queue: Mutex<CommitQueue>,
    wake_flush: Condvar,
    wake_sync: Condvar,
    durable: watch::Sender<Durable>,
    events: Mutex<Option<broadcast::Sender<Batch>>>,
    compaction: Mutex<()>,
    limits: HistoryLimits,
}

/// Where a watch starts: the history it missed and the live channel.
pub(crate) struct Subscription {
    /// The durable events after the watch's revision, under its prefix.
    pub backlog: VecDeque<Arc<Event>>,
    /// Every later batch; `None` once the store is closed.
    pub receiver: Option<broadcast::Receiver<Batch>>,
    /// The last revision the backlog covers.
    pub last: u64,
}

impl Shared {
    /// The durable events after `after` under `prefix` and a receiver for
    /// every later batch, taken under one lock so nothing falls between.
    pub(crate) fn subscribe(&self, prefix: &str, after: u64) -> Result<Subscription> {
        let state = self.state.read().expect("state lock");
        let backlog = state.events_after(prefix, after)?;
        let receiver = self
            .events
            .lock()
            .expect("events lock")
            .as_ref()
            .map(|s| s.subscribe());
        Ok(Subscription {
            backlog,
            receiver,
            last: after.max(state.durable),
        })
    }

    /// Appends one write under the state lock and hands it to the commit
    /// thread; returns its revision.
    fn write(
        &self,
        state: &mut State,
        kind: EventKind,
        key: &str,
        create_revision: Option<u64>,
        value: Bytes,
    ) -> Result<Arc<Event>> {
        if let Some(failed) = &state.failed {
            return Err(StoreError::Failed(failed.clone()));
        }
        let revision = state.current + 1;
        let record = Record {
            kind,
            key: key.to_owned(),
            create_revision: create_revision.unwrap_or(revision),
            value,
        };
        self.backend.append(revision, &record)?;
        let event = state.apply(revision, record, Instant::now());
        self.queue.lock().expect("queue lock").appended = revision;
        self.wake_flush.notify_one();
        Ok(event)
    }

    /// Waits until `revision` is durable.
    async fn durable(&self, revision: u64) -> Result<()> {
        let mut receiver = self.durable.subscribe();
        let durable = receiver
            .wait_for(|d| d.revision >= revision || d.failed.is_some())
            .await
            .map_err(|_| StoreError::Failed("the store was closed".into()))?;
        match (&durable.failed, durable.revision >= revision) {
            (_, true) => Ok(()),
            (Some(failed), false) => Err(StoreError::Failed(failed.clone())),
            (None, false) => unreachable!("wait_for returned early"),
        }
    }

    /// The first stage of group commit: writes everything appended so far
    /// out of the backend's buffers (enough to survive a killed process),
    /// then hands it to the sync stage. While the sync stage waits for the
    /// disk, this one already writes out the next group.
    fn run_flushes(&self) {
        let mut flushed = self.state.read().expect("state lock").durable;
        loop {
            let (target, shutdown) = {
                let mut queue = self.queue.lock().expect("queue lock");
                while queue.appended == flushed && !queue.shutdown {
                    queue = self.wake_flush.wait(queue).expect("queue lock");
                }
                (queue.appended, queue.shutdown)
            };
            if target > flushed {
                if let Err(e) = self.backend.flush() {
                    self.fail(e);
                    break;
                }
                flushed = target;
                self.queue.lock().expect("queue lock").flushed = target;
                self.wake_sync.notify_one();
            }
            if shutdown && target == flushed {
                break;
            }
        }
        self.queue.lock().expect("queue lock").flushing = false;
        self.wake_sync.notify_one();
    }

    /// The second stage: makes the flushed writes durable with one sync,
    /// publishes them to watchers and wakes their writers; compacts history
    /// past its limits and checkpoints the durable revision.
    fn run_syncs(&self) {
        let mut durable = self.state.read().expect("state lock").durable;
        let mut checkpoint = (durable, Instant::now());
        loop {
            let (target, flushing) = {
                let mut queue = self.queue.lock().expect("queue lock");
                if queue.flushed == durable && queue.flushing {
                    queue = self
                        .wake_sync
                        .wait_timeout(queue, IDLE_TICK)
                        .expect("queue lock")
                        .0;
                }
                (queue.flushed, queue.flushing)
            };
            if target > durable {
                if let Err(e) = self.backend.sync() {
                    return self.fail(e);
                }
                self.publish(target);
                durable = target;
            }
            if let Err(e) = self.compact_by_limits() {
                return self.fail(e);
            }
            let done = !flushing && target == durable;
            if durable > checkpoint.0 && (done || checkpoint.1.elapsed() >= IDLE_TICK) {
                if let Err(e) = self.backend.checkpoint(durable) {
                    return self.fail(e);
                }
                checkpoint = (durable, Instant::now());
            }
            if done {
                return;
            }
        }
    }

    /// Refuses every further write, and wakes the writers waiting for
    /// durability with the reason.
    fn fail(&self, error: StoreError) {
        let message = error.to_string();
        self.state.write().expect("state lock").failed = Some(message.clone());
        self.durable.send_modify(|d| d.failed = Some(message));
    }

    fn publish(&self, target: u64) {
        let mut state = self.state.write().expect("state lock");
        let start = (state.durable - state.compacted) as usize;
        let end = (target - state.compacted) as usize;
        let batch: Batch = state
            .log
            .range(start..end)
            .map(|(e, _)| e.clone())
            .collect();
        state.durable = target;
        if let Some(sender) = self.events.lock().expect("events lock").as_ref() {
            // No receivers is not an error: nobody is watching.
            let _ = sender.send(batch);
        }
        drop(state);
        self.durable.send_modify(|d| d.revision = target);
    }

    fn compact_by_limits(&self) -> Result<()> {
        let target = {
            let state = self.state.read().expect("state lock");
            state.compaction_target(&self.limits, Instant::now())
        };
        self.compact_to(target)
    }

    fn compact_to(&self, revision: u64) -> Result<()> {
        // Held across both steps so that compactions reach the backend in
        // order; writers only wait for the in-memory step.
        let _serial = self.compaction.lock().expect("compaction lock");
        let removed = {
            let mut state = self.state.write().expect("state lock");
            if revision <= state.compacted {
                return Ok(());
            }
            state.compact(revision)
        };
        self.backend.compact(revision, &removed)
    }
}

/// The store: a multi-version index in memory over a durable backend.
pub struct MvccStore {
    shared: Arc<Shared>,
    committers: Vec<JoinHandle<()>>,
}

impl MvccStore {
    /// A store that keeps nothing on disk.
    pub fn memory(limits: HistoryLimits) -> Self {
        Self::start(Box::new(MemoryBackend), State::default(), limits)
    }

    /// Opens (or creates) the sled store in the data directory `path`.
    /// Fails with an error naming the path when it is not a directory, is
    /// corrupt, or is open in another process.
    pub fn open(path: &Path, limits: HistoryLimits) -> Result<Self> {
        let backend = SledBackend::open(path, SLED_CACHE_BYTES)?;
        let state = recover(&backend, path)?;
        Ok(Self::start(Box::new(backend), state, limits))
    }

    fn start(backend: Box<dyn Backend>, state: State, limits: HistoryLimits) -> Self {
        let revision = state.durable;
        let shared = Arc::new(Shared {
            queue: Mutex::new(CommitQueue {
                appended: revision,
                flushed: revision,
                shutdown: false,
                flushing: true,
            }),
            state: RwLock::new(state),
            backend,
            wake_flush: Condvar::new(),
            wake_sync: Condvar::new(),
            durable: watch::channel(Durable {
                revision,
                failed: None,
            })
            .0,
            events: Mutex::new(Some(broadcast::channel(WATCH_CHANNEL).0)),
            compaction: Mutex::new(()),
            limits,
        });
        let stage = |name: &str, run: fn(&Shared)| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || run(&shared))
                .expect("spawn a commit thread")
        };
        let committers = vec![
            stage("skiff-store-flush", Shared::run_flushes),
            stage("skiff-store-sync", Shared::run_syncs),
        ];
        Self { shared, committers }
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.shared.state.read().expect("state lock")
    }
}

impl Drop for MvccStore {
    fn drop(&mut self) {
        self.shared.queue.lock().expect("queue lock").shutdown = true;
        self.shared.wake_flush.notify_one();
        for committer in self.committers.drain(..) {
            let _ = committer.join();
        }
        // Ends every watch stream.
        self.shared.events.lock().expect("events lock").take();
    }
}

/// Rebuilds the index from the backend's records. Superseded records at or
/// before the compacted revision (left when a compaction's removals did not
/// reach the disk before a crash) are removed again.
fn recover(backend: &dyn Backend, path: &Path) -> Result<State> {
    let compacted = backend.compacted()?;
    let mut state = State {
        compacted,
        current: compacted,
        durable: compacted,
        ..State::default()
    };
    let mut garbage = Vec::new();
    let opened = Instant::now();
    backend.for_each(&mut |revision, record| {
        if revision <= compacted {
            // Only the latest record at or before the compacted revision
            // counts; earlier ones and deletions are garbage.
            let superseded = state.keys.remove(&record.key).unwrap_or_default();
            garbage.extend(superseded.iter().map(|v| v.mod_revision));
            if record.kind == EventKind::Deleted {
                garbage.push(revision);
            } else {
                let version = Version {
                    mod_revision: revision,
                    create_revision: record.create_revision,
                    value: Some(record.value),
                };
                state.keys.insert(record.key, vec![version]);
            }
            return Ok(());
        }
        if revision != state.current + 1 {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                reason: format!(
                    "revision {} is missing (found {revision} after it)",
                    state.current + 1
                ),
            });
        }
        state.apply(revision, record, opened);
        Ok(())
    })?;
    let checkpointed = backend.checkpointed();
    if state.current < checkpointed {
        return Err(StoreError::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "revisions up to {checkpointed} were made durable but only {} remain",
                state.current
            ),
        });
    }
    state.durable = state.current;
    if !garbage.is_empty() {
        backend.compact(compacted, &garbage)?;
    }
    Ok(state)
}

fn check(preconditions: &Preconditions, object: &Object) -> Result<()> {
    if let Some(expected) = preconditions.resource_version {
        if expected != object.mod_revision {
            return Err(StoreError::Conflict {
                key: object.key.clone(),
                reason: format!(
                    "resourceVersion is {}, expected {expected}",
                    object.mod_revision
                ),
            });
        }
    }
    if let Some(expected) = &preconditions.uid {
        #[derive(serde::Deserialize)]
        struct Meta {
            uid: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct WithMeta {
            metadata: Option<Meta>,
        }
        let uid = serde_json::from_slice::<WithMeta>(&object.value)
            .ok()
            .and_then(|o| o.metadata?.uid);
        if uid.as_deref() != Some(expected.as_str()) {
            return Err(StoreError::Conflict {
                key: object.key.clone(),
                reason: format!("uid is {uid:?}, expected {expected:?}"),
            });
        }
    }
    Ok(())
}

fn encode_continue(revision: u64, last_key: &str) -> String {
    format!("{revision}:{last_key}")
}

fn decode_continue(token: &str, prefix: &str) -> Result<(u64, String)> {
    let invalid = || StoreError::InvalidContinue(token.to_owned());
    let (revision, key) = token.split_once(':').ok_or_else(invalid)?;
    let revision = revision.parse().map_err(|_| invalid())?;
    if !key.starts_with(prefix) {
        return Err(invalid());
    }
    Ok((revision, key.to_owned()))
}

#[async_trait]
impl Store for MvccStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<Object> {
        let event = {
            let mut state = self.shared.state.write().expect("state lock");
            if state.latest(key).is_some() {
                return Err(StoreError::AlreadyExists {
                    key: key.to_owned(),
                });
            }
            self.shared
                .write(&mut state, EventKind::Added, key, None, value)?
        };
        self.shared.durable(event.revision).await?;
        Ok(event.object.clone())
    }

    async fn get(&self, key: &str) -> Result<Object> {
        let state = self.state();
        state
            .version_at(key, state.durable)
            .ok_or_else(|| StoreError::NotFound {
                key: key.to_owned(),
            })
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult> {
        let state = self.state();
        let (revision, start_after) = match &options.continue_token {
            Some(token) => {
                let (revision, key) = decode_continue(token, prefix)?;
                (revision, Some(key))
            }
            None => (options.revision.unwrap_or(state.durable), None),
        };
        if revision < state.compacted {
            return Err(StoreError::Gone {
                requested: revision,
                compacted: state.compacted,
            });
        }
        if revision > state.durable {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: state.durable,
            });
        }
        let start = match &start_after {
            Some(key) => Bound::Excluded(key.as_str()),
            None => Bound::Included(prefix),
        };
        let limit = if options.limit == 0 {
            usize::MAX
        } else {
            options.limit
        };
        let mut items = Vec::new();
        let mut continue_token = None;
        let matching = state
            .keys
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, versions)| at_revision(key, versions, revision))
            .filter(|object| options.filter.as_ref().is_none_or(|f| f.matches(object)));
        for object in matching {
            if items.len() == limit {
                let last: &Object = items.last().expect("limit is at least one");
                continue_token = Some(encode_continue(revision, &last.key));
                break;
            }
            items.push(object);
        }
        Ok(ListResult {
            items,
            revision,
            continue_token,
        })
    }

    async fn guaranteed_update(
        &self,
        key: &str,
        preconditions: Preconditions,
        mut update: UpdateFn<'_>,
    ) -> Result<Object> {
        loop {
            let current = self
                .shared
                .state
                .read()
                .expect("state lock")
                .latest(key)
                .ok_or_else(|| StoreError::NotFound {
                    key: key.to_owned(),
                })?;
            check(&preconditions, &current)?;
            let value = update(&current)?;
            if value == current.value {
                self.shared.durable(current.mod_revision).await?;
                return Ok(current);
            }
            let event = {
                let mut state = self.shared.state.write().expect("state lock");
                let unchanged = state
                    .keys
                    .get(key)
                    .and_then(|v| v.last())
                    .is_some_and(|v| v.mod_revision == current.mod_revision);
                if !unchanged {
                    continue;
                }
                let create = Some(current.create_revision);
                self.shared
                    .write(&mut state, EventKind::Modified, key, create, value)?
            };
            self.shared.durable(event.revision).await?;
            return Ok(event.object.clone());
        }
    }

    async fn delete(&self, key: &str, preconditions: Preconditions) -> Result<Object> {
        let (event, prev) = {
            let mut state = self.shared.state.write().expect("state lock");
            let current = state.latest(key).ok_or_else(|| StoreError::NotFound {
                key: key.to_owned(),
            })?;
            check(&preconditions, &current)?;
            let create = Some(current.create_revision);
            let event =
                self.shared
                    .write(&mut state, EventKind::Deleted, key, create, Bytes::new())?;
            (event, current)
        };
        self.shared.durable(event.revision).await?;
        Ok(prev)
    }

    fn watch(&self, prefix: &str, from: Option<u64>) -> Result<WatchStream> {
        let from = from.unwrap_or_else(|| self.current_revision());
        crate::watch::stream(self.shared.clone(), prefix.to_owned(), from)
    }

    fn current_revision(&self) -> u64 {
        self.state().durable
    }

    fn compacted_revision(&self) -> u64 {
        self.state().compacted
    }

    fn stats(&self) -> Stats {
        let state = self.state();
        let live = state
            .keys
            .values()
            .filter_map(|versions| versions.last()?.value.as_ref());
        let (objects, object_bytes) = live.fold((0, 0), |(n, bytes), value| {
            (n + 1, bytes + value.len() as u64)
        });
        Stats {
            objects,
            object_bytes,
            history_events: state.log.len() as u64,
            disk_bytes: self.shared.backend.disk_bytes(),
        }
    }

    async fn compact(&self, revision: u64) -> Result<()> {
        let durable = self.current_revision();
        if revision > durable {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: durable,
            });
        }
        self.shared.compact_to(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::conformance_suite;
    use futures::StreamExt;

    fn sled_store(limits: HistoryLimits) -> (MvccStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (MvccStore::open(dir.path(), limits).unwrap(), dir)
    }

    mod memory {
        use super::*;
        conformance_suite!(|limits| (MvccStore::memory(limits), ()));
    }

    mod sled {
        use super::*;
        conformance_suite!(sled_store);
    }

    #[tokio::test]
    async fn reopening_keeps_objects_revisions_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let (listed, revision) = {
            let store = MvccStore::open(dir.path(), HistoryLimits::default()).unwrap();
            for i in 0..20u64 {
                store
                    .create(&format!("/k/{i:02}"), Bytes::from(format!("v{i}")))
                    .await
                    .unwrap();
            }
            store
                .delete("/k/03", Preconditions::default())
                .await
                .unwrap();
            let update: UpdateFn = Box::new(|_| Ok(Bytes::from_static(b"changed")));
            store
                .guaranteed_update("/k/04", Preconditions::default(), update)
                .await
                .unwrap();
            store.compact(10).await.unwrap();
            store
                .create("/k/20", Bytes::from_static(b"v20"))
                .await
                .unwrap();
            (
                store.list("/k/", ListOptions::default()).await.unwrap(),
                store.current_revision(),
            )
        };
        let store = MvccStore::open(dir.path(), HistoryLimits::default()).unwrap();
        assert_eq!(store.current_revision(), revision);
        assert_eq!(store.compacted_revision(), 10);
        assert_eq!(
            store.list("/k/", ListOptions::default()).await.unwrap(),
            listed
        );
        assert!(matches!(
            store.watch("/k/", Some(9)),
            Err(StoreError::Gone { .. })
        ));
        let history: Vec<u64> = store
            .watch("/k/", Some(10))
            .unwrap()
            .take((revision - 10) as usize)
            .map(|e| e.unwrap().revision)
            .collect()
            .await;
        assert_eq!(history, (11..=revision).collect::<Vec<_>>());
        // New writes carry on from the recovered revision.
        let next = store
            .create("/k/21", Bytes::from_static(b"v21"))
            .await
            .unwrap();
        assert_eq!(next.mod_revision, revision + 1);
    }

    #[tokio::test]
    async fn everything_deleted_and_compacted_keeps_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = MvccStore::open(dir.path(), HistoryLimits::default()).unwrap();
            store
                .create("/k/a", Bytes::from_static(b"a"))
                .await
                .unwrap();
            store
                .delete("/k/a", Preconditions::default())
                .await
                .unwrap();
            store.compact(2).await.unwrap();
        }
        let store = MvccStore::open(dir.path(), HistoryLimits::default()).unwrap();
        assert_eq!(store.current_revision(), 2);
        assert!(store
            .list("/k/", ListOptions::default())
            .await
            .unwrap()
            .items
            .is_empty());
        assert_eq!(
            store
                .create("/k/a", Bytes::new())
                .await
                .unwrap()
                .mod_revision,
            3
        );
    }

    #[test]
    fn a_second_open_of_one_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = MvccStore::open(dir.path(), HistoryLimits::default()).unwrap();
        let Err(error) = MvccStore::open(dir.path(), HistoryLimits::default()) else {
            panic!("a second open succeeded");
        };
        let message = error.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("lock"), "{message}");
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, b"not a store").unwrap();
        let Err(error) = MvccStore::open(&path, HistoryLimits::default()) else {
            panic!("opened a file as a store");
        };
        assert!(matches!(error, StoreError::Backend { .. }), "{error}");
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[tokio::test]
    async fn a_corrupt_directory_fails_at_open_naming_the_path() {
        for damage in ["garbage", "flip", "truncate", "remove", "marker"] {
            let dir = tempfile::tempdir().unwrap();
            {
                let store = MvccStore::open(dir.path(), HistoryLimits::default()).unwrap();
                for i in 0..200u64 {
                    store
                        .create(&format!("/k/{i}"), Bytes::from(vec![b'x'; 512]))
                        .await
                        .unwrap();
                }
            }
            let db = dir.path().join("db");
            match damage {
                "garbage" => {
                    let mut bytes = std::fs::read(&db).unwrap();
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = (i * 7 + 13) as u8;
                    }
                    std::fs::write(&db, bytes).unwrap();
                }
                "flip" => {
                    let mut bytes = std::fs::read(&db).unwrap();
                    let middle = bytes.len() / 2;
                    for b in &mut bytes[middle..middle + 64] {
                        *b ^= 0x5a;
                    }
                    std::fs::write(&db, bytes).unwrap();
                }
                "truncate" => std::fs::write(&db, b"").unwrap(),
                "marker" => std::fs::write(dir.path().join("skiff-store"), b"hello").unwrap(),
                _ => std::fs::remove_file(&db).unwrap(),
            }
            let Err(error) = MvccStore::open(dir.path(), HistoryLimits::default()) else {
                panic!("{damage}: a damaged store opened");
            };
            let message = error.to_string();
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{damage}: {message}"
            );
        }
    }

    #[test]
    fn compaction_target_follows_count_and_age() {
        let mut state = State::default();
        let start = Instant::now();
        for revision in 1..=10 {
            let record = Record {
                kind: EventKind::Added,
                key: format!("/k/{revision}"),
                create_revision: revision,
                value: Bytes::new(),
            };
            let at = start + Duration::from_secs(revision);
            state.apply(revision, record, at);
        }
        state.durable = 8;
        let limits = |max_events, secs| HistoryLimits {
            max_events,
            max_age: Duration::from_secs(secs),
        };
        // Only durable events count, and nothing is compacted twice.
        assert_eq!(state.compaction_target(&limits(100, 1000), start), 0);
        assert_eq!(state.compaction_target(&limits(5, 1000), start), 3);
        // Events 1..=4 are older than 5 s at t=9.5 s.
        let now = start + Duration::from_millis(9_500);
        assert_eq!(state.compaction_target(&limits(100, 5), now), 4);
        let removed = state.compact(4);
        assert!(removed.is_empty(), "creations supersede nothing");
        assert_eq!(state.compaction_target(&limits(100, 5), start), 4);
    }
}
