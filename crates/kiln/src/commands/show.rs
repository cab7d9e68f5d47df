//! `kiln show`: a model's summary, as `ollama show` prints it, or one of its parts.

use super::text;
use crate::cli::ShowArgs;
use crate::client::Client;
use anyhow::Result;
use serde_json::{json, Value};

/// Lines of a long text shown in the summary before "...".
const PREVIEW_LINES: usize = 2;

/// A titled block of rows, keys padded to one column.
fn section(title: &str, rows: &[(String, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    let mut out = format!("  {title}\n");
    for (key, value) in rows {
        let line = if value.is_empty() { key.clone() } else { format!("{key:<width$}    {value}") };
        out.push_str(&format!("    {}\n", line.trim_end()));
    }
    out
}

/// The first lines of a text, and "..." when there is more.
fn preview(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.trim().lines().collect();
    let mut rows: Vec<(String, String)> =
        lines.iter().take(PREVIEW_LINES).map(|l| (l.trim_end().to_string(), String::new())).collect();
    if lines.len() > PREVIEW_LINES {
        rows.push(("...".into(), String::new()));
    }
    rows
}

/// The summary: model facts, capabilities, parameters, system prompt and license.
fn summary(show: &Value) -> String {
    let info = &show["model_info"];
    let details = &show["details"];
    let arch = info.get("general.architecture").and_then(Value::as_str).unwrap_or_else(|| text(details, "family"));
    let number = |key: &str| info.get(format!("{arch}.{key}")).map(|v| v.to_string()).unwrap_or_default();
    let model: Vec<(String, String)> = [
        ("architecture", arch.to_string()),
        ("parameters", text(details, "parameter_size").to_string()),
        ("context length", number("context_length")),
        ("embedding length", number("embedding_length")),
        ("quantization", text(details, "quantization_level").to_string()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut sections = vec![section("Model", &model)];
    let capabilities: Vec<(String, String)> = show["capabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|c| (c.to_string(), String::new()))
        .collect();
    if !capabilities.is_empty() {
        sections.push(section("Capabilities", &capabilities));
    }
    let parameters: Vec<(String, String)> = text(show, "parameters")
        .lines()
        .filter_map(|l| l.trim().split_once(char::is_whitespace))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    if !parameters.is_empty() {
        sections.push(section("Parameters", &parameters));
    }
    for (title, key) in [("System", "system"), ("License", "license")] {
        let rows = preview(text(show, key));
        if !rows.is_empty() {
            sections.push(section(title, &rows));
        }
    }
    sections.join("\n")
}

pub fn show(client: &Client, args: &ShowArgs) -> Result<()> {
    let answer = client.post("/api/show", &json!({ "model": args.name }))?;
    let part = [
        (args.modelfile, "modelfile"),
        (args.parameters, "parameters"),
        (args.template, "template"),
        (args.system, "system"),
        (args.license, "license"),
    ]
    .into_iter()
    .find_map(|(wanted, key)| wanted.then_some(key));
    match part {
        Some("license") => print!("{}", license(&answer)),
        Some(key) => println!("{}", text(&answer, key)),
        None => println!("{}", summary(&answer)),
    }
    Ok(())
}

/// The license text, then what it obliges the user to do in plain words (from the text, or
/// from the GGUF's `general.license` id when there is no text).
fn license(show: &Value) -> String {
    let license_text = text(show, "license");
    let gguf_id = show["model_info"].get("general.license").and_then(Value::as_str);
    let summary = kiln_library::license::render(kiln_library::license::identify(license_text, gguf_id), license_text);
    if license_text.trim().is_empty() {
        summary
    } else {
        format!("{}\n\n{summary}", license_text.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_like_ollama_show() {
        let answer = json!({
            "details": {"family": "llama", "parameter_size": "135M", "quantization_level": "Q4_1"},
            "model_info": {"general.architecture": "llama", "llama.context_length": 8192, "llama.embedding_length": 576},
            "capabilities": ["completion"],
            "parameters": "temperature 0\nstop \"<|im_end|>\"",
            "system": "Be terse.",
            "license": "Apache License\nVersion 2.0\nmore\n",
        });
        let expected = "  Model
    architecture        llama
    parameters          135M
    context length      8192
    embedding length    576
    quantization        Q4_1

  Capabilities
    completion

  Parameters
    temperature    0
    stop           \"<|im_end|>\"

  System
    Be terse.

  License
    Apache License
    Version 2.0
    ...
";
        assert_eq!(summary(&answer), expected);
    }
}
