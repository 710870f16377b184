//! The audit trail: one record per mutating request, kept in a bounded
//! ring and read through `GET /skiff/v1/audit?since=SEQ`, so that `skiff
//! trace` can build a timeline of who did what, in which order, at which
//! resourceVersion.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::AppState;

/// How many records are kept; older ones are dropped first.
pub const CAPACITY: usize = 10_000;

/// What a response tells the audit trail about the object it wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// The object's namespace.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: Option<String>,
    /// Its resourceVersion after the write.
    pub resource_version: Option<String>,
}

impl Written {
    /// Reads them from a response object's metadata.
    pub fn of(object: &Value) -> Self {
        let text = |field: &str| object["metadata"][field].as_str().map(str::to_owned);
        Self {
            namespace: text("namespace"),
            name: text("name"),
            resource_version: text("resourceVersion"),
        }
    }
}

/// Marks the response of a dry run (`?dryRun=All`): it wrote nothing, so
/// the audit trail records no write.
#[derive(Debug, Clone, Copy)]
pub struct DryRun;

/// Whether `response` answers a write that the audit trail records: a
/// mutating verb that was not a dry run.
pub fn recorded(verb: &str, response: &axum::response::Response) -> bool {
    mutating(verb) && response.extensions().get::<DryRun>().is_none()
}

/// One mutating request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Increases by one per record, from 1.
    pub seq: u64,
    /// When the request arrived (RFC 3339, UTC, microseconds).
    pub time: String,
    /// `skiff-admin` or `system:anonymous`.
    pub user: String,
    /// The client's User-Agent.
    pub user_agent: String,
    /// create, update, patch, delete or deletecollection.
    pub verb: String,
    /// The resource (with its subresource, as `pods/binding`).
    pub resource: String,
    /// The object's namespace, if any.
    pub namespace: Option<String>,
    /// The object's name, if known.
    pub name: Option<String>,
    /// The HTTP status code answered.
    pub code: u16,
    /// The object's resourceVersion after the write, if it succeeded.
    pub resource_version: Option<String>,
    /// How long the request took.
    pub latency_ms: f64,
}

/// The bounded ring of records.
#[derive(Default)]
pub struct AuditLog {
    records: Mutex<(u64, VecDeque<Record>)>,
}

impl AuditLog {
    /// Appends a record, numbering it; drops the oldest past [`CAPACITY`].
    pub fn push(&self, mut record: Record) {
        let mut guard = self.records.lock().expect("audit lock");
        let (last, records) = &mut *guard;
        *last += 1;
        record.seq = *last;
        records.push_back(record);
        if records.len() > CAPACITY {
            records.pop_front();
        }
    }

    /// The records after `since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<Record> {
        let guard = self.records.lock().expect("audit lock");
        guard.1.iter().filter(|r| r.seq > since).cloned().collect()
    }
}

/// Whether a verb changes something (and so is audited).
pub fn mutating(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// `?since=SEQ`.
#[derive(Deserialize)]
pub struct Since {
    #[serde(default)]
    since: u64,
}

/// `GET /skiff/v1/audit`.
pub async fn serve(State(state): State<AppState>, Query(query): Query<Since>) -> Json<Value> {
    let items = state.audit.since(query.since);
    let last = items.last().map_or(query.since, |r| r.seq);
    Json(json!({ "kind": "AuditRecordList", "items": items, "last": last }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(verb: &str) -> Record {
        Record {
            seq: 0,
            time: String::new(),
            user: "skiff-admin".into(),
            user_agent: String::new(),
            verb: verb.into(),
            resource: "pods".into(),
            namespace: None,
            name: None,
            code: 201,
            resource_version: None,
            latency_ms: 0.0,
        }
    }

    #[test]
    fn the_ring_numbers_records_and_stays_bounded() {
        let log = AuditLog::default();
        for _ in 0..CAPACITY + 5 {
            log.push(record("create"));
        }
        let all = log.since(0);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].seq, 6);
        assert_eq!(log.since(CAPACITY as u64 + 3).len(), 2);
        assert!(mutating("patch") && !mutating("watch") && !mutating("get"));
    }
}
