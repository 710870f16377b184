//! Skiff's store: a watchable, durable, multi-version key-value store.
//!
//! Every Kubernetes object Skiff keeps lives here under a key such as
//! `/registry/pods/default/web-1`, as the JSON bytes the apiserver hands in.
//! The store gives every write the next value of one global revision counter;
//! an object's `resourceVersion` is the revision of its last write
//! ([`Object::mod_revision`]), a list says the revision at which it is
//! consistent, and a watch replays every change after a revision, in order.
//!
//! The [`Store`] trait is the one interface the rest of Skiff uses. It is
//! implemented by [`MvccStore`], which keeps the multi-version index and the
//! watch history in memory and writes every change through a backend:
//! [`MvccStore::open`] uses sled (one data directory, the embedded default),
//! [`MvccStore::memory`] keeps nothing on disk (tests). The same conformance
//! suite runs against both.
//!
//! A write returns only once it is durable: writers append to the backend and
//! wait while two background threads make everything appended so far durable
//! as one group (group commit): one writes the group out of sled's buffers,
//! the other syncs it to the disk (`fdatasync`), publishes its events to
//! watchers and wakes its writers, while the first already writes out the
//! next group. Readers and watchers only ever see durable writes.

mod backend;
mod engine;
mod error;
mod record;
mod watch;

#[cfg(test)]
mod conformance;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use engine::MvccStore;
pub use error::{Result, StoreError};
pub use watch::WatchStream;

/// One stored object: its key, its bytes and the revisions that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The full key, such as `/registry/pods/default/web-1`.
    pub key: String,
    /// The object as the caller stored it (JSON for Kubernetes objects).
    pub value: Bytes,
    /// The revision at which the key was created.
    pub create_revision: u64,
    /// The revision of the last write: the object's `resourceVersion`.
    pub mod_revision: u64,
}

/// What a watch event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was created.
    Added,
    /// The key was updated.
    Modified,
    /// The key was deleted.
    Deleted,
}

/// One change, as a watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The revision of this write.
    pub revision: u64,
    /// The object after the write. For [`EventKind::Deleted`] this is the
    /// object as it was last stored, with `mod_revision` set to the revision
    /// of the deletion (as Kubernetes reports deletions).
    pub object: Object,
    /// The object before the write (none for [`EventKind::Added`]).
    pub prev: Option<Object>,
}

/// Conditions a write checks against the stored object before it applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The object's `metadata.uid` must be this.
    pub uid: Option<String>,
    /// The object's last write must be at this revision.
    pub resource_version: Option<u64>,
}

/// A predicate a list applies before it counts its limit, so that a page of
/// a filtered list holds `limit` matching objects (as Kubernetes' storage
/// applies its selection predicate).
#[derive(Clone)]
pub struct Filter(pub std::sync::Arc<dyn Fn(&Object) -> bool + Send + Sync>);

impl Filter {
    /// Whether `object` is selected.
    pub fn matches(&self, object: &Object) -> bool {
        (self.0)(object)
    }
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filter(..)")
    }
}

/// How to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Read the state as of this revision instead of the latest one.
    /// Revisions older than the compacted one answer [`StoreError::Gone`].
    pub revision: Option<u64>,
    /// Return at most this many objects (0: no limit); the result then
    /// carries a continue token when more remain.
    pub limit: usize,
    /// A token from a previous page: carries on at that page's revision.
    pub continue_token: Option<String>,
    /// Only objects this selects are returned (and counted for `limit`).
    pub filter: Option<Filter>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    /// The objects, in key order.
    pub items: Vec<Object>,
    /// The revision at which the whole list (all its pages) is consistent.
    pub revision: u64,
    /// Present when more objects remain: pass it back in
    /// [`ListOptions::continue_token`].
    pub continue_token: Option<String>,
}

/// The function [`Store::guaranteed_update`] calls with the current object to
/// get the new bytes. It may be called more than once, when another writer
/// changed the object in between. Errors it returns abort the update and are
/// handed back unchanged (use [`StoreError::Rejected`] for the caller's own).
pub type UpdateFn<'a> = Box<dyn FnMut(&Object) -> Result<Bytes> + Send + 'a>;

/// How much a store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live objects.
    pub objects: u64,
    /// Bytes of their values.
    pub object_bytes: u64,
    /// Events kept in the watch history.
    pub history_events: u64,
    /// Bytes the backend takes on disk (0 in memory).
    pub disk_bytes: u64,
}

/// How long watch history is kept and how much of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Events older than this are compacted away.
    pub max_age: Duration,
    /// At most this many events are kept.
    pub max_events: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_events: 100_000,
        }
    }
}

/// The one storage interface of Skiff.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if it exists.
    async fn create(&self, key: &str, value: Bytes) -> Result<Object>;

    /// Reads the latest durable state of `key`.
    async fn get(&self, key: &str) -> Result<Object>;

    /// Lists the objects whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListResult>;

    /// Reads `key`, calls `update` with it and writes what it returns, checking
    /// `preconditions` first; if another writer changed the key in between, it
    /// reads again and retries. Returning the current bytes unchanged writes
    /// nothing and takes no revision.
    async fn guaranteed_update(
        &self,
        key: &str,
        preconditions: Preconditions,
        update: UpdateFn<'_>,
    ) -> Result<Object>;

    /// Deletes `key` if `preconditions` hold; returns the object as it was.
    async fn delete(&self, key: &str, preconditions: Preconditions) -> Result<Object>;

    /// Streams every change under `prefix` after revision `from` (after the
    /// current revision when `None`), in revision order. `from` older than
    /// the compacted revision answers [`StoreError::Gone`], and so does the
    /// stream if it falls behind past the kept history.
    fn watch(&self, prefix: &str, from: Option<u64>) -> Result<WatchStream>;

    /// The latest durable revision.
    fn current_revision(&self) -> u64;

    /// The revision up to which history was compacted.
    fn compacted_revision(&self) -> u64;

    /// How much the store holds, for metrics.
    fn stats(&self) -> Stats;

    /// Drops the history up to and including `revision`: lists and watches
    /// from before it answer [`StoreError::Gone`] afterwards.
    async fn compact(&self, revision: u64) -> Result<()>;
}
