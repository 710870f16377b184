//! Leases: written whole; printed with their holder.

use serde_json::{json, Value};

use super::Strategy;
use crate::table::{age, col, name, or_none, text, Column, S};

/// The Lease strategy.
#[derive(Debug, Clone, Copy)]
pub struct Lease;

impl Strategy for Lease {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[col("Name", S, 0), col("Holder", S, 0), col("Age", S, 0)];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let holder = or_none(text(&object["spec"]["holderIdentity"]));
        vec![name(object), json!(holder), age(object, now)]
    }
}
