//! ServiceAccounts: written whole; printed with their secrets' count.

use serde_json::{json, Value};

use super::Strategy;
use crate::table::{age, col, count, name, Column, I, S};

/// The ServiceAccount strategy.
#[derive(Debug, Clone, Copy)]
pub struct ServiceAccount;

impl Strategy for ServiceAccount {
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[col("Name", S, 0), col("Secrets", I, 0), col("Age", S, 0)];
        COLUMNS
    }

    fn cells(&self, object: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let secrets = count(&object["secrets"]);
        vec![name(object), json!(secrets), age(object, now)]
    }
}
