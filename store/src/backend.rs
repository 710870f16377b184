//! Where the store's writes go: sled on disk, or nowhere (memory).
//!
//! A backend keeps records by revision. The engine appends each write,
//! asks for everything appended to be made durable (one call serves many
//! writes: group commit), and removes the records compaction no longer needs.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::record::Record;

/// A durable home for records.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The revision up to which history was compacted (0 for a new store).
    fn compacted(&self) -> Result<u64>;
    /// Calls `visit` with every kept record in revision order.
    fn for_each(&self, visit: &mut dyn FnMut(u64, Record) -> Result<()>) -> Result<()>;
    /// Appends the record of `revision`; not yet durable.
    fn append(&self, revision: u64, record: &Record) -> Result<()>;
    /// Writes every appended record out of memory buffers: it then survives
    /// a killed process.
    fn flush(&self) -> Result<()>;
    /// Makes every flushed record durable: it then survives a power cut.
    fn sync(&self) -> Result<()>;
    /// Records that history is compacted up to `compacted` and removes the
    /// records of `removed`, atomically; durable with the next `sync`.
    fn compact(&self, compacted: u64, removed: &[u64]) -> Result<()>;
    /// Records, durably and apart from the data, that every revision up to
    /// `revision` is durable, so that data lost later is detected at open.
    fn checkpoint(&self, revision: u64) -> Result<()>;
    /// The last checkpointed revision.
    fn checkpointed(&self) -> u64;
    /// Bytes taken on disk.
    fn disk_bytes(&self) -> u64 {
        0
    }
}

/// Keeps nothing: for tests and throw-away clusters.
pub(crate) struct MemoryBackend;

impl Backend for MemoryBackend {
    fn compacted(&self) -> Result<u64> {
        Ok(0)
    }
    fn for_each(&self, _: &mut dyn FnMut(u64, Record) -> Result<()>) -> Result<()> {
        Ok(())
    }
    fn append(&self, _: u64, _: &Record) -> Result<()> {
        Ok(())
    }
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    fn compact(&self, _: u64, _: &[u64]) -> Result<()> {
        Ok(())
    }
    fn checkpoint(&self, _: u64) -> Result<()> {
        Ok(())
    }
    fn checkpointed(&self) -> u64 {
        0
    }
}

const COMPACTED_KEY: &[u8] = b"skiff/compacted";
const FORMAT_KEY: &[u8] = b"skiff/format";
const FORMAT: &[u8] = b"1";
/// Written beside sled's files once the store exists and rewritten at every
/// checkpoint with the last durable revision, so that a data directory whose
/// sled files were lost, emptied or cut short is reported, not reopened as a
/// silently smaller store. (sled recovers a damaged log by dropping its tail,
/// as it would after a crash.)
const MARKER_FILE: &str = "skiff-store";
const MARKER_HEADER: &str = "skiff store format 1";

/// One sled tree in a data directory.
pub(crate) struct SledBackend {
    path: PathBuf,
    db: sled::Db,
    /// sled's log file, for `fdatasync`: sled's own flush on Linux uses
    /// `sync_file_range`, which neither flushes the disk's write cache nor
    /// persists the file's growth, so it survives a killed process but not a
    /// power cut. Syncing this descriptor after sled's flush makes the
    /// flushed writes durable the way etcd's `fdatasync` does.
    log_file: std::fs::File,
    checkpointed: u64,
}

impl SledBackend {
    /// Opens (or creates) the store in `path`. Fails, naming the path, when
    /// the directory is unusable, corrupt, or open in another process.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self> {
        let backend_error =
            |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Backend {
                path: path.to_owned(),
                source,
            };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        if path.exists() && !path.is_dir() {
            return Err(backend_error("exists and is not a directory".into()));
        }
        let marker = path.join(MARKER_FILE);
        let checkpointed = read_marker(&marker).map_err(corrupt)?;
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput);
        // sled panics on some damaged files instead of answering an error.
        let db = match catch_unwind(AssertUnwindSafe(|| config.open())) {
            Ok(Ok(db)) => db,
            Ok(Err(sled::Error::Corruption { at, .. })) => {
                return Err(corrupt(format!("sled found corruption at {at:?}")))
            }
            Ok(Err(sled::Error::Io(e))) => return Err(backend_error(Box::new(e))),
            Ok(Err(e)) => return Err(corrupt(e.to_string())),
            Err(panic) => {
                return Err(corrupt(format!(
                    "sled failed to open it: {}",
                    panic_message(&panic)
                )))
            }
        };
        let format = db.get(FORMAT_KEY).map_err(|e| corrupt(e.to_string()))?;
        match format {
            Some(f) if f.as_ref() == FORMAT => {}
            Some(f) => {
                return Err(corrupt(format!(
                    "unknown store format {:?}",
                    String::from_utf8_lossy(&f)
                )))
            }
            None if checkpointed.is_some() => {
                return Err(corrupt(format!(
                    "{MARKER_FILE} says a store was here but sled holds none of its data"
                )))
            }
            None => {
                db.insert(FORMAT_KEY, FORMAT)
                    .map_err(|e| corrupt(e.to_string()))?;
                db.flush().map_err(|e| backend_error(Box::new(e)))?;
            }
        }
        let log_file =
            std::fs::File::open(path.join("db")).map_err(|e| backend_error(Box::new(e)))?;
        let backend = Self {
            path: path.to_owned(),
            db,
            log_file,
            checkpointed: checkpointed.unwrap_or(0),
        };
        if checkpointed.is_none() {
            backend.checkpoint(0)?;
        }
        Ok(backend)
    }

    fn error(&self, e: sled::Error) -> StoreError {
        match e {
            sled::Error::Corruption { at, .. } => StoreError::Corrupt {
                path: self.path.clone(),
                reason: format!("sled found corruption at {at:?}"),
            },
            other => StoreError::Backend {
                path: self.path.clone(),
                source: Box::new(other),
            },
        }
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}

/// The revision a marker file records; `None` when there is no marker.
fn read_marker(marker: &Path) -> std::result::Result<Option<u64>, String> {
    let text = match std::fs::read_to_string(marker) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", marker.display())),
    };
    let mut lines = text.lines();
    let revision = match (lines.next(), lines.next()) {
        (Some(MARKER_HEADER), Some(line)) => {
            line.strip_prefix("revision ").and_then(|r| r.parse().ok())
        }
        _ => None,
    };
    revision
        .map(Some)
        .ok_or_else(|| format!("{} is not a Skiff store marker", marker.display()))
}

fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

impl Backend for SledBackend {
    fn disk_bytes(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
    fn compacted(&self) -> Result<u64> {
        match self.db.get(COMPACTED_KEY).map_err(|e| self.error(e))? {
            None => Ok(0),
            Some(v) => v
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("compacted revision is not 8 bytes".into())),
        }
    }

    fn for_each(&self, visit: &mut dyn FnMut(u64, Record) -> Result<()>) -> Result<()> {
        // Records are the only 8-byte keys; the metadata keys are longer.
        for item in self.db.iter() {
            let (key, value) = item.map_err(|e| self.error(e))?;
            let Ok(revision) = <[u8; 8]>::try_from(key.as_ref()) else {
                continue;
            };
            let revision = u64::from_be_bytes(revision);
            let record = Record::decode(&value).map_err(|reason| {
                self.corrupt(format!("record at revision {revision}: {reason}"))
            })?;
            visit(revision, record)?;
        }
        Ok(())
    }

    fn append(&self, revision: u64, record: &Record) -> Result<()> {
        self.db
            .insert(revision.to_be_bytes(), record.encode())
            .map(drop)
            .map_err(|e| self.error(e))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(drop).map_err(|e| self.error(e))
    }

    fn sync(&self) -> Result<()> {
        self.log_file.sync_data().map_err(|e| StoreError::Backend {
            path: self.path.clone(),
            source: Box::new(e),
        })
    }

    fn compact(&self, compacted: u64, removed: &[u64]) -> Result<()> {
        let mut batch = sled::Batch::default();
        batch.insert(COMPACTED_KEY, &compacted.to_be_bytes());
        for revision in removed {
            batch.remove(&revision.to_be_bytes());
        }
        self.db.apply_batch(batch).map_err(|e| self.error(e))
    }

    fn checkpoint(&self, revision: u64) -> Result<()> {
        let io = |e: std::io::Error| StoreError::Backend {
            path: self.path.clone(),
            source: Box::new(e),
        };
        let marker = self.path.join(MARKER_FILE);
        let fresh = self.path.join(format!("{MARKER_FILE}.new"));
        let mut file = std::fs::File::create(&fresh).map_err(io)?;
        std::io::Write::write_all(
            &mut file,
            format!("{MARKER_HEADER}\nrevision {revision}\n").as_bytes(),
        )
        .map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&fresh, &marker).map_err(io)?;
        std::fs::File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    fn checkpointed(&self) -> u64 {
        self.checkpointed
    }
}
