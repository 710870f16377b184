//! The store's one error type.

use std::path::PathBuf;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key does not exist.
    #[error("key {key:?} not found")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// A create found the key already there.
    #[error("key {key:?} already exists")]
    AlreadyExists {
        /// The key asked for.
        key: String,
    },
    /// A precondition did not hold (the object changed, or is another one).
    #[error("precondition failed for {key:?}: {reason}")]
    Conflict {
        /// The key written.
        key: String,
        /// Which precondition failed, with the expected and actual values.
        reason: String,
    },
    /// The revision asked for was compacted away: relist.
    #[error("revision {requested} is compacted (oldest kept: {compacted})")]
    Gone {
        /// The revision asked for.
        requested: u64,
        /// The revision up to which history is compacted.
        compacted: u64,
    },
    /// The revision asked for is newer than the store's.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: u64,
        /// The store's current revision.
        current: u64,
    },
    /// A continue token that this store did not hand out.
    #[error("invalid continue token {0:?}")]
    InvalidContinue(String),
    /// The update function refused the change; the caller's error is inside.
    #[error("update rejected: {0}")]
    Rejected(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The data directory could not be opened or used.
    #[error("data directory {path}: {source}")]
    Backend {
        /// The data directory.
        path: PathBuf,
        /// What the backend reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The data directory holds something that is not a valid Skiff store.
    #[error("data directory {path} is corrupt: {reason}")]
    Corrupt {
        /// The data directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A write could not be made durable; the store refuses further writes.
    #[error("store is failed: {0}")]
    Failed(String),
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
