//! Server-side Tables for `kubectl get`: asked for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

use axum::http::{header, HeaderMap};
use serde_json::{json, Value};
use skiff_api::table::{cells, columns};
use skiff_api::ResourceType;

use crate::error::ApiError;

/// How rows carry their object (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// Its metadata, as a `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

/// Whether the client asked for a Table (and takes one).
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
        })
}

/// The `includeObject` query parameter.
pub fn include(query: &crate::rest::Query) -> Result<Include, ApiError> {
    match query.get("includeObject").map(String::as_str) {
        None | Some("") | Some("Metadata") => Ok(Include::Metadata),
        Some("None") => Ok(Include::None),
        Some("Object") => Ok(Include::Object),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid includeObject {other:?}"
        ))),
    }
}

/// A Table of `objects` with `metadata` (the list's resourceVersion and
/// continue token).
pub fn render(
    resource: &ResourceType,
    objects: &[Value],
    metadata: Value,
    include: Include,
) -> Value {
    let now = jiff::Timestamp::now();
    let definitions: Vec<Value> = columns(resource.kind)
        .iter()
        .map(|c| {
            let mut definition = json!({ "name": c.name, "type": c.kind, "format": "", "description": "", "priority": c.priority });
            if c.name == "Name" {
                definition["format"] = json!("name");
            }
            definition
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({ "cells": cells(resource.kind, object, now) });
            match include {
                Include::None => {}
                Include::Object => row["object"] = object.clone(),
                Include::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object["metadata"],
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}
