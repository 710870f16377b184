//! Server-side Tables for `kubectl get`: asked for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

use axum::http::{header, HeaderMap};
use serde_json::{json, Value};
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
    asks_for(headers, &["as=Table"])
}

/// Whether the client asked for metadata only (`as=PartialObjectMetadata`,
/// what metadata informers such as the garbage collector's use).
pub fn metadata_only(headers: &HeaderMap) -> bool {
    asks_for(
        headers,
        &["as=PartialObjectMetadata", "as=PartialObjectMetadataList"],
    )
}

fn asks_for(headers: &HeaderMap, forms: &[&str]) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            forms.iter().any(|f| params.contains(f)) && params.contains(&"g=meta.k8s.io")
        })
}

/// An object's `PartialObjectMetadata`: its metadata alone.
pub fn partial(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"],
    })
}

/// How a watch sends its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Whole.
    Object,
    /// As one-row Tables (`kubectl get -w`).
    Table(Include),
    /// As `PartialObjectMetadata`.
    Metadata,
}

/// The shape the request asks for.
pub fn shape(headers: &HeaderMap, query: &crate::rest::Query) -> Result<Shape, ApiError> {
    if wanted(headers) {
        Ok(Shape::Table(include(query)?))
    } else if metadata_only(headers) {
        Ok(Shape::Metadata)
    } else {
        Ok(Shape::Object)
    }
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
    let definitions: Vec<Value> = resource
        .strategy
        .columns()
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
            let mut row = json!({ "cells": resource.strategy.cells(object, now) });
            match include {
                Include::None => {}
                Include::Object => row["object"] = object.clone(),
                Include::Metadata => row["object"] = partial(object),
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
