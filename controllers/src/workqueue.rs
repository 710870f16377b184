//! The controllers' work queue, as client-go's: keys (`namespace/name`),
//! each queued at most once, never synced by two workers at once (a key
//! added while it is being synced is synced again after), and re-added
//! after a delay for back-off.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    queue: VecDeque<String>,
    /// Queued, or to be queued again when its sync ends.
    dirty: HashSet<String>,
    /// Being synced now.
    processing: HashSet<String>,
}

/// A queue of keys to sync.
#[derive(Clone, Default)]
pub struct WorkQueue {
    inner: Arc<Mutex<Inner>>,
    ready: Arc<Notify>,
}

impl WorkQueue {
    /// Queues `key` unless it already waits.
    pub fn add(&self, key: String) {
        let mut inner = self.inner.lock().expect("queue");
        if !inner.dirty.insert(key.clone()) {
            return;
        }
        if !inner.processing.contains(&key) {
            inner.queue.push_back(key);
            drop(inner);
            self.ready.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: String, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// The next key to sync; call [`WorkQueue::done`] after.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.ready.notified();
            {
                let mut inner = self.inner.lock().expect("queue");
                if let Some(key) = inner.queue.pop_front() {
                    inner.dirty.remove(&key);
                    inner.processing.insert(key.clone());
                    return key;
                }
            }
            notified.await;
        }
    }

    /// The sync of `key` ended: it is queued again if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let mut inner = self.inner.lock().expect("queue");
        inner.processing.remove(key);
        if inner.dirty.contains(key) {
            inner.queue.push_back(key.to_owned());
            drop(inner);
            self.ready.notify_one();
        }
    }
}

/// The key of an object in a work queue: `namespace/name`.
pub fn key_of<K: kube::Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// An informer: a cache of every `K`, kept by a list and watch (relisting
/// after errors), that hands each object added or changed to `touched`.
/// The cache fills while the returned future runs.
pub fn informer<K>(
    api: kube::Api<K>,
    mut touched: impl FnMut(&K) + Send + 'static,
) -> (
    kube::runtime::reflector::Store<K>,
    impl std::future::Future<Output = ()> + Send,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + std::marker::Sync
        + 'static,
{
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let (store, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector(writer, kube::runtime::watcher(api, Default::default()))
        .default_backoff()
        .touched_objects()
        .for_each(move |object| {
            if let Ok(object) = object {
                touched(&object);
            }
            futures::future::ready(())
        });
    (store, stream)
}

/// A controller's sync of one key.
pub trait Sync: Send + std::marker::Sync + 'static {
    /// Why a sync fails.
    type Error: std::fmt::Display + Send;

    /// Brings the object `key` names to where it should be.
    fn sync(&self, key: &str) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send;
}

/// Starts `workers` loops that take keys from `queue` and sync them with
/// `controller`; a failed sync is logged as `component` and retried after a
/// second.
pub fn spawn_workers<C: Sync>(
    controller: std::sync::Arc<C>,
    queue: WorkQueue,
    workers: usize,
    component: &'static str,
) {
    for _ in 0..workers {
        let (controller, queue) = (controller.clone(), queue.clone());
        tokio::spawn(async move {
            loop {
                let key = queue.next().await;
                if let Err(e) = controller.sync(&key).await {
                    eprintln!("{component}: {key}: {e}");
                    queue.add_after(key.clone(), Duration::from_secs(1));
                }
                queue.done(&key);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_queued_once_and_resynced_when_added_during_a_sync() {
        let q = WorkQueue::default();
        q.add("a".into());
        q.add("b".into());
        q.add("a".into());
        assert_eq!(q.next().await, "a");
        q.add("a".into());
        assert_eq!(
            q.next().await,
            "b",
            "a is being synced: not handed out twice"
        );
        q.done("a");
        assert_eq!(q.next().await, "a");
        q.done("a");
        q.done("b");
        let waiting = tokio::time::timeout(Duration::from_millis(20), q.next()).await;
        assert!(waiting.is_err(), "nothing left");
    }
}
