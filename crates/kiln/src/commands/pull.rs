//! `kiln pull`: downloads through the server, drawing its progress.

use super::text;
use crate::client::Client;
use crate::progress::Progress;
use anyhow::Result;
use serde_json::{json, Value};

pub fn pull(client: &Client, name: &str, insecure: bool) -> Result<()> {
    let mut progress = Progress::stderr();
    let body = json!({ "model": name, "insecure": insecure, "stream": true });
    let result = client.stream("/api/pull", &body, |event| {
        let status = text(&event, "status");
        match (event.get("digest"), event.get("total").and_then(Value::as_u64)) {
            (Some(_), Some(total)) => {
                progress.update(status, event.get("completed").and_then(Value::as_u64).unwrap_or(0), total)
            }
            _ => progress.status(status),
        }
        Ok(true)
    });
    progress.finish();
    result
}
