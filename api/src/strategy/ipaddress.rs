//! IPAddresses (the ClusterIPs the Service allocator hands out, one
//! object per address, as upstream records them since 1.33): written
//! whole; printed with the object that holds them.

use serde_json::{json, Value};

use super::Strategy;
use crate::table::{age, col, name, text, Column, S};

/// The IPAddress strategy.
#[derive(Debug, Clone, Copy)]
pub struct IpAddress;

impl Strategy for IpAddress {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[col("Name", S, 0), col("ParentRef", S, 0), col("Age", S, 0)];
        COLUMNS
    }

    /// PARENTREF as upstream's `group/resource/namespace/name`.
    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let parent = &object["spec"]["parentRef"];
        let resource = match text(&parent["group"]) {
            group if group.is_empty() => text(&parent["resource"]),
            group => format!("{}.{group}", text(&parent["resource"])),
        };
        let holder = [resource, text(&parent["namespace"]), text(&parent["name"])]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        vec![name(object), json!(holder), age(object, now)]
    }
}
