//! The commands that work on the model library, each a client of the server's API.

pub mod create;
pub mod list;
pub mod manage;
pub mod pull;
pub mod run;
pub mod show;

use serde_json::Value;

/// A string field of an API object, empty when absent.
fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}
