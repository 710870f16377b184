//! Watch streams: newline-delimited JSON events from a resourceVersion,
//! filtered by the request's selectors, with bookmarks and a timeout.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use skiff_store::{EventKind, Filter, ListOptions, Object, StoreError};

use crate::error::ApiError;
use crate::object::from_stored;
use crate::rest::{parse_revision, Api};
use crate::table::Shape;

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);
/// How long a watch lasts when the client names no timeout (upstream
/// picks 30-60 minutes; clients reconnect from their last revision).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

fn line(kind: &str, object: &Value) -> bytes::Bytes {
    bytes::Bytes::from(crate::wire::event_line(kind, object))
}

fn error_line(error: &ApiError) -> bytes::Bytes {
    line("ERROR", &error.status())
}

/// What a store event looks like to a watcher with `filter`: an object that
/// starts or stops matching is ADDED or DELETED, as upstream's filtered
/// watches report it.
fn translate<'a>(
    event: &'a skiff_store::Event,
    filter: Option<&Filter>,
) -> Option<(&'static str, &'a Object)> {
    let selected = |o: &Object| filter.is_none_or(|f| f.matches(o));
    let now = event.kind != EventKind::Deleted && selected(&event.object);
    let before = event.prev.as_ref().is_some_and(selected);
    match (event.kind, before, now) {
        (EventKind::Deleted, true, _) => Some(("DELETED", &event.object)),
        (EventKind::Deleted, false, _) => None,
        (_, false, true) => Some(("ADDED", &event.object)),
        (_, true, true) => Some(("MODIFIED", &event.object)),
        (_, true, false) => Some(("DELETED", &event.object)),
        (_, false, false) => None,
    }
}

/// The live part of a watch.
struct Live {
    events: skiff_store::WatchStream,
    filter: Option<Filter>,
    resource: skiff_api::ResourceType,
    /// The revision of the last store event handled (sent or filtered out).
    last: u64,
    ticks: tokio::time::Interval,
    bookmarks: bool,
    /// Counts this watch as open while it is served.
    _open: crate::metrics::WatchGuard,
    /// How objects go out: whole, as one-row Tables, or as metadata.
    shape: Shape,
}

/// An event's object as the watcher asked for it: itself, a Table row, or
/// its metadata.
fn shaped(resource: &skiff_api::ResourceType, object: Value, shape: Shape) -> Value {
    match shape {
        Shape::Object => object,
        Shape::Metadata => crate::table::partial(&object),
        Shape::Table(include) => {
            let metadata = json!({ "resourceVersion": object["metadata"]["resourceVersion"] });
            crate::table::render(resource, &[object], metadata, include)
        }
    }
}

impl Live {
    /// The next line to send; `None` ends the stream.
    async fn next(&mut self) -> Option<bytes::Bytes> {
        loop {
            tokio::select! {
                item = self.events.next() => match item? {
                    Ok(event) => {
                        self.last = event.revision;
                        if let Some((kind, object)) = translate(&event, self.filter.as_ref()) {
                            return Some(match from_stored(object) {
                                Ok(value) => line(kind, &shaped(&self.resource, value, self.shape)),
                                Err(e) => error_line(&e),
                            });
                        }
                    }
                    Err(e) => return Some(error_line(&ApiError::from_store(e, &self.resource, ""))),
                },
                _ = self.ticks.tick(), if self.bookmarks => {
                    return Some(bookmark_line(&self.resource, self.last, false));
                }
            }
        }
    }
}

fn bookmark_line(
    resource: &skiff_api::ResourceType,
    revision: u64,
    initial_end: bool,
) -> bytes::Bytes {
    let mut object = json!({
        "kind": resource.kind,
        "apiVersion": resource.api_version(),
        "metadata": { "resourceVersion": revision.to_string() },
    });
    if initial_end {
        object["metadata"]["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line("BOOKMARK", &object)
}

/// Serves `GET ...?watch=true`.
pub async fn serve(api: &Api<'_>) -> Result<Response, ApiError> {
    let resource = api.target.resource;
    let filter = api.filter()?;
    let bookmarks = api
        .query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true" || b == "1");
    let timeout = match api.query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let initial_events = match api.query.get("sendInitialEvents").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => {
            if api.query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
                return Err(ApiError::invalid(
                    resource,
                    "",
                    vec![crate::Cause {
                        reason: "FieldValueInvalid",
                        field: "resourceVersionMatch".into(),
                        message: "Unsupported value: sendInitialEvents requires resourceVersionMatch=NotOlderThan".into(),
                    }],
                ));
            }
            if !bookmarks {
                return Err(ApiError::bad_request(
                    "sendInitialEvents requires allowWatchBookmarks=true",
                ));
            }
            true
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid sendInitialEvents {other:?}"
            )))
        }
    };
    let requested = match api.query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(parse_revision(rv)?),
    };
    let shape = crate::table::shape(api.headers, api.query)?;
    let prefix = resource.prefix(api.target.namespace.as_deref());
    let store = api.state.store.clone();

    // "" and "0" (and sendInitialEvents) start with the current state as
    // ADDED events, then go on from the revision of that state.
    let mut initial = Vec::new();
    let from = if requested.is_none() || initial_events {
        let options = ListOptions {
            filter: filter.clone(),
            ..ListOptions::default()
        };
        let list = api.list_stored(options).await?;
        for object in &list.items {
            initial.push(line(
                "ADDED",
                &shaped(resource, from_stored(object)?, shape),
            ));
        }
        list.revision
    } else {
        requested.unwrap_or_default()
    };
    if initial_events {
        initial.push(bookmark_line(resource, from, true));
    }

    let body = match store.watch(&prefix, Some(from)) {
        // A too-old resourceVersion answers 200 with one ERROR event.
        Err(StoreError::Gone {
            requested,
            compacted,
        }) => {
            let error = ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            ));
            Body::from(error_line(&error))
        }
        Err(e) => return Err(ApiError::from_store(e, resource, "")),
        Ok(events) => {
            // One loop over the store's events and the bookmark ticks, so a
            // bookmark never names a revision whose events were not sent.
            let state = Live {
                events,
                filter,
                resource: resource.clone(),
                last: from,
                ticks: tokio::time::interval_at(
                    tokio::time::Instant::now() + BOOKMARK_EVERY,
                    BOOKMARK_EVERY,
                ),
                bookmarks,
                shape,
                _open: crate::metrics::WatchGuard::new(api.state.metrics.clone(), resource.plural),
            };
            let live = stream::unfold(state, |mut live| async move {
                let line = live.next().await?;
                Some((line, live))
            })
            .take_until(tokio::time::sleep(timeout));
            let all = stream::iter(initial)
                .chain(live)
                .map(Ok::<_, std::convert::Infallible>);
            Body::from_stream(all)
        }
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
