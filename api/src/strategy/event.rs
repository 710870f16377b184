//! Events: written whole; printed and selected as upstream's (its
//! `source` field is the reporting component, old or new style).

use serde_json::{json, Value};

use super::Strategy;
use crate::table::{col, since, text, Column, S};

/// The Event strategy.
#[derive(Debug, Clone, Copy)]
pub struct Event;

impl Strategy for Event {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            col("Last Seen", S, 0),
            col("Type", S, 0),
            col("Reason", S, 0),
            col("Object", S, 0),
            col("Message", S, 0),
        ];
        COLUMNS
    }

    fn cells(&self, event: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let last = event["lastTimestamp"]
            .as_str()
            .or(event["eventTime"].as_str())
            .or(event["metadata"]["creationTimestamp"].as_str());
        let involved = &event["involvedObject"];
        vec![
            json!(since(last, now)),
            json!(text(&event["type"])),
            json!(text(&event["reason"])),
            json!(format!(
                "{}/{}",
                text(&involved["kind"]).to_lowercase(),
                text(&involved["name"])
            )),
            json!(text(&event["message"])),
        ]
    }

    fn fields(&self) -> &'static [&'static str] {
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
    }

    fn field(&self, event: &Value, field: &str) -> Option<String> {
        (field == "source").then(|| match event["source"]["component"].as_str() {
            Some(component) if !component.is_empty() => component.to_owned(),
            _ => text(&event["reportingComponent"]),
        })
    }
}
