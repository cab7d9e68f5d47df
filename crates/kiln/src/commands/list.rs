//! `kiln list` and `kiln ps`: the library's models and the loaded ones, as Ollama's tables.

use super::text;
use crate::client::Client;
use crate::format::{human_bytes, parse_rfc3339, relative_time, table};
use anyhow::Result;
use serde_json::Value;
use std::time::SystemTime;

/// The models of a `/api/tags` or `/api/ps` answer.
fn models(answer: &Value) -> &[Value] {
    answer.get("models").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// The short ID Ollama shows: the digest's first twelve hex digits.
fn short_id(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(12).collect()
}

fn size(m: &Value, key: &str) -> u64 {
    m.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn modified(m: &Value, now: SystemTime) -> String {
    parse_rfc3339(text(m, "modified_at")).map(|t| relative_time(t, now)).unwrap_or_default()
}

/// When a loaded model unloads; past that, it is only waiting for its requests to finish.
fn until(m: &Value, now: SystemTime) -> String {
    match parse_rfc3339(text(m, "expires_at")) {
        Some(t) if t <= now => "Stopping...".into(),
        Some(t) => relative_time(t, now),
        None => String::new(),
    }
}

fn list_table(answer: &Value, now: SystemTime) -> String {
    let mut rows = vec![["NAME", "ID", "SIZE", "MODIFIED"].map(String::from).to_vec()];
    for m in models(answer) {
        rows.push(vec![
            text(m, "name").to_string(),
            short_id(text(m, "digest")),
            human_bytes(size(m, "size")),
            modified(m, now),
        ]);
    }
    table(&rows)
}

/// Where a loaded model's weights are: "100% CPU", "100% GPU" or the split.
fn processor(m: &Value) -> String {
    let (total, vram) = (size(m, "size"), size(m, "size_vram"));
    match vram {
        0 => "100% CPU".into(),
        v if v >= total => "100% GPU".into(),
        v => {
            let gpu = (v * 100).checked_div(total).unwrap_or(0);
            format!("{}%/{gpu}% CPU/GPU", 100 - gpu)
        }
    }
}

fn ps_table(answer: &Value, now: SystemTime) -> String {
    let mut rows = vec![["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"].map(String::from).to_vec()];
    for m in models(answer) {
        let context = m.get("context_length").and_then(Value::as_u64).map(|n| n.to_string()).unwrap_or_default();
        rows.push(vec![
            text(m, "name").to_string(),
            short_id(text(m, "digest")),
            human_bytes(size(m, "size")),
            processor(m),
            context,
            until(m, now),
        ]);
    }
    table(&rows)
}

pub fn list(client: &Client) -> Result<()> {
    print!("{}", list_table(&client.get("/api/tags")?, SystemTime::now()));
    Ok(())
}

pub fn ps(client: &Client) -> Result<()> {
    print!("{}", ps_table(&client.get("/api/ps")?, SystemTime::now()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn list_rows_have_short_ids_sizes_and_ages() {
        let now = UNIX_EPOCH + Duration::from_secs(86_400);
        let answer = json!({"models": [{
            "name": "smollm2:latest", "digest": DIGEST, "size": 100_600_000,
            "modified_at": "1970-01-01T23:58:00Z"
        }]});
        let out = list_table(&answer, now);
        assert_eq!(
            out,
            "NAME             ID             SIZE     MODIFIED\nsmollm2:latest   0123456789ab   100 MB   2 minutes ago\n"
        );
        assert_eq!(list_table(&json!({"models": []}), now), "NAME   ID   SIZE   MODIFIED\n");
    }

    #[test]
    fn ps_rows_show_processor_context_and_expiry() {
        let now = UNIX_EPOCH;
        let answer = json!({"models": [
            {"name": "a:latest", "digest": DIGEST, "size": 2_000_000_000, "size_vram": 0,
             "context_length": 4096, "expires_at": "1970-01-01T00:04:30Z"},
            {"name": "b:latest", "digest": DIGEST, "size": 100, "size_vram": 100,
             "context_length": 8192, "expires_at": "2070-01-01T00:00:00Z"},
        ]});
        let out = ps_table(&answer, now);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("NAME") && lines[0].ends_with("UNTIL"));
        assert!(lines[1].contains("2 GB") && lines[1].contains("100% CPU") && lines[1].contains("4096"));
        assert!(lines[1].ends_with("4 minutes from now"), "{}", lines[1]);
        assert!(lines[2].contains("100% GPU") && lines[2].ends_with("Forever"), "{}", lines[2]);
        assert_eq!(processor(&json!({"size": 100, "size_vram": 25})), "75%/25% CPU/GPU");
        assert_eq!(until(&json!({"expires_at": "1970-01-01T00:00:00Z"}), now), "Stopping...");
    }
}
