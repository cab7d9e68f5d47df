//! `kiln cp`, `kiln rm` and `kiln stop`.

use crate::client::Client;
use anyhow::Result;
use serde_json::json;

pub fn copy(client: &Client, source: &str, destination: &str) -> Result<()> {
    client.post("/api/copy", &json!({ "source": source, "destination": destination }))?;
    println!("copied '{source}' to '{destination}'");
    Ok(())
}

pub fn remove(client: &Client, names: &[String]) -> Result<()> {
    for name in names {
        client.delete("/api/delete", &json!({ "model": name }))?;
        println!("deleted '{name}'");
    }
    Ok(())
}

/// Unloads a model the way Ollama does: an empty generate request with a keep-alive of zero.
pub fn stop(client: &Client, name: &str) -> Result<()> {
    client.post("/api/generate", &json!({ "model": name, "prompt": "", "keep_alive": 0, "stream": false }))?;
    Ok(())
}
