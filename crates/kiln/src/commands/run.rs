//! `kiln run NAME`: a model of the library, answered by the server.
//!
//! A prompt gets one answer (`/api/generate`, which carries `--system`, `--template` and
//! `--raw`). As with `ollama run`, text piped on stdin is part of the prompt (before the
//! prompt argument, if any) rather than chat input; with stdin a terminal and no prompt, the
//! interactive chat starts (`/api/chat`, the history sent each turn). An embedding model
//! prints the prompt's vector instead (`/api/embed`).

use super::text;
use crate::answer::AnswerWriter;
use crate::chat::{chat_loop, ChatSession, Timings};
use crate::cli::{RunArgs, SamplingArgs};
use crate::client::{ApiError, Client};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::io::{IsTerminal, Read};
use std::time::Duration;

/// The sampling flags the user gave, as Ollama's `options`: those not given are left to the
/// model's PARAMETERs and the server's defaults.
fn api_options(o: &SamplingArgs) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(key.into(), v);
        }
    };
    put("temperature", o.temperature.map(Value::from));
    put("top_k", o.top_k.map(Value::from));
    put("top_p", o.top_p.map(Value::from));
    put("min_p", o.min_p.map(Value::from));
    put("seed", o.seed.map(Value::from));
    put("num_predict", o.num_predict.map(Value::from));
    put("num_ctx", o.num_ctx.map(Value::from));
    put("repeat_penalty", o.repeat_penalty.map(Value::from));
    put("repeat_last_n", o.repeat_last_n.map(Value::from));
    put("presence_penalty", o.presence_penalty.map(Value::from));
    put("frequency_penalty", o.frequency_penalty.map(Value::from));
    put("stop", (!o.stop.is_empty()).then(|| Value::from(o.stop.clone())));
    out
}

/// The timings of a final chunk (durations in nanoseconds).
fn timings(done: &Value) -> Timings {
    let nanos = |k: &str| Duration::from_nanos(done.get(k).and_then(Value::as_u64).unwrap_or(0));
    let count = |k: &str| done.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
    Timings {
        total: nanos("total_duration"),
        load: nanos("load_duration"),
        prompt_eval_count: count("prompt_eval_count"),
        prompt_eval_duration: nanos("prompt_eval_duration"),
        eval_count: count("eval_count"),
        eval_duration: nanos("eval_duration"),
    }
}

/// Where the text of a chunk is: its answer and its thinking.
#[derive(Clone, Copy)]
enum Api {
    Generate,
    Chat,
}

impl Api {
    fn path(self) -> &'static str {
        match self {
            Api::Generate => "/api/generate",
            Api::Chat => "/api/chat",
        }
    }

    /// (content, thinking) of a chunk.
    fn pieces(self, chunk: &Value) -> (&str, &str) {
        match self {
            Api::Generate => (text(chunk, "response"), text(chunk, "thinking")),
            Api::Chat => (text(&chunk["message"], "content"), text(&chunk["message"], "thinking")),
        }
    }
}

/// Streams an answer to stdout; returns its text and the final chunk. A closed stdout (e.g.
/// `| head`) stops reading, which ends the generation.
fn stream_answer(client: &Client, api: Api, body: &Value, show_thinking: bool) -> Result<(String, Option<Value>)> {
    let mut out = AnswerWriter::new(std::io::stdout().lock(), show_thinking);
    let mut answer = String::new();
    let mut last = None;
    let mut open = true;
    client.stream(api.path(), body, |chunk| {
        let (content, thinking) = api.pieces(&chunk);
        answer.push_str(content);
        open = out.write(content, thinking).is_ok();
        if chunk.get("done").and_then(Value::as_bool) == Some(true) {
            last = Some(chunk);
        }
        Ok(open)
    })?;
    if open {
        let _ = out.finish();
    }
    Ok((answer, last))
}

/// The prompt: the argument, with piped stdin in front of it. `None`: chat interactively.
fn prompt(arg: Option<String>) -> Result<Option<String>> {
    if std::io::stdin().is_terminal() {
        return Ok(arg);
    }
    let mut piped = String::new();
    std::io::stdin().read_to_string(&mut piped).context("reading stdin")?;
    let piped = piped.trim_end();
    Ok(Some(match arg {
        Some(p) if !piped.is_empty() => format!("{piped}\n{p}"),
        Some(p) => p,
        None => piped.to_string(),
    }))
}

fn one_answer(client: &Client, args: &RunArgs, prompt: String, options: Map<String, Value>) -> Result<()> {
    let mut body = json!({ "model": args.model, "prompt": prompt, "raw": args.raw, "options": options });
    if let Some(think) = args.think {
        body["think"] = think.into();
    }
    if let Some(system) = &args.system {
        body["system"] = system.as_str().into();
    }
    if let Some(path) = &args.template {
        let template = std::fs::read_to_string(path).with_context(|| format!("reading template {}", path.display()))?;
        body["template"] = template.into();
    }
    let (_, done) = stream_answer(client, Api::Generate, &body, !args.hidethinking)?;
    if let Some(done) = done.filter(|_| args.verbose) {
        timings(&done).print();
    }
    Ok(())
}

/// A chat with a model on the server: the history is sent each turn, the server fits it.
struct RemoteChat<'a> {
    client: &'a Client,
    model: String,
    messages: Vec<Value>,
    options: Map<String, Value>,
    verbose: bool,
    think: Option<bool>,
    show_thinking: bool,
}

impl ChatSession for RemoteChat<'_> {
    fn say(&mut self, message: String) -> Result<()> {
        self.messages.push(json!({ "role": "user", "content": message }));
        let mut body = json!({ "model": self.model, "messages": self.messages, "options": self.options });
        if let Some(think) = self.think {
            body["think"] = think.into();
        }
        match stream_answer(self.client, Api::Chat, &body, self.show_thinking) {
            Ok((reply, done)) => {
                self.messages.push(json!({ "role": "assistant", "content": reply }));
                if let Some(done) = done.filter(|_| self.verbose) {
                    timings(&done).print();
                }
                Ok(())
            }
            // The server refused this message (too long, say): the chat goes on without it.
            Err(e) if e.is::<ApiError>() => {
                eprintln!("Error: {e}");
                self.messages.pop();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn clear(&mut self) {
        self.messages.retain(|m| m["role"] == "system");
    }
}

/// Like `ollama run`: a model the library does not have is pulled first. Returns what
/// `/api/show` says about it.
fn ensure_present(client: &Client, model: &str) -> Result<Value> {
    let show = json!({ "model": model });
    match client.post("/api/show", &show) {
        Err(e) if e.downcast_ref::<ApiError>().is_some_and(|a| a.0.ends_with("not found")) => {
            super::pull::pull(client, model, false)
                .with_context(|| format!("model '{model}' is not in the library and pulling it failed"))?;
            client.post("/api/show", &show)
        }
        other => other,
    }
}

/// An embedding model prints the vector of the prompt as a JSON array, as `ollama run` does.
fn embedding(client: &Client, args: &RunArgs, prompt: Option<String>, options: Map<String, Value>) -> Result<()> {
    let Some(input) = prompt else {
        bail!("embedding models need input text: kiln run {} \"your text here\"", args.model);
    };
    let mut body = json!({ "model": args.model, "input": input, "truncate": args.truncate, "options": options });
    if let Some(d) = args.dimensions {
        body["dimensions"] = d.into();
    }
    let reply = client.post("/api/embed", &body)?;
    let vector = reply["embeddings"].get(0).context("the server returned no embedding")?;
    println!("{}", serde_json::to_string(vector)?);
    Ok(())
}

pub fn run(args: RunArgs) -> Result<()> {
    if args.threads.is_some() {
        bail!("--threads applies to GGUF files run directly; a server sets its own (kiln serve --threads)");
    }
    let client = Client::connect()?;
    if client.embedded && std::io::stderr().is_terminal() {
        eprintln!("note: no server at KILN_HOST; running the model inside this command");
    }
    let show = ensure_present(&client, &args.model)?;
    let options = api_options(&args.options);
    if show["capabilities"].as_array().is_some_and(|c| c.iter().any(|c| c == "embedding")) {
        return embedding(&client, &args, prompt(args.prompt.clone())?, options);
    }
    if let Some(p) = prompt(args.prompt.clone())? {
        return one_answer(&client, &args, p, options);
    }
    if args.template.is_some() || args.raw {
        bail!("--template and --raw need a prompt when running a model by name");
    }
    // Loads the model before the first message, and fails early on a model that is missing.
    client.post("/api/chat", &json!({ "model": args.model, "messages": [], "stream": false }))?;
    let system = args.system.iter().map(|s| json!({ "role": "system", "content": s }));
    let mut chat = RemoteChat {
        client: &client,
        model: args.model.clone(),
        messages: system.collect(),
        options,
        verbose: args.verbose,
        think: args.think,
        show_thinking: !args.hidethinking,
    };
    chat_loop(&mut chat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_options_are_sent() {
        assert!(api_options(&SamplingArgs::default()).is_empty());
        let given = SamplingArgs {
            temperature: Some(0.0),
            num_predict: Some(8),
            stop: vec!["\n".into()],
            ..SamplingArgs::default()
        };
        assert_eq!(Value::Object(api_options(&given)), json!({"temperature": 0.0, "num_predict": 8, "stop": ["\n"]}));
    }

    #[test]
    fn final_chunks_give_timings() {
        let done = json!({"done": true, "total_duration": 3_000_000_000u64, "load_duration": 1_000,
                          "prompt_eval_count": 5, "prompt_eval_duration": 2_000, "eval_count": 8, "eval_duration": 4_000});
        let t = timings(&done);
        assert_eq!((t.total, t.load), (Duration::from_secs(3), Duration::from_micros(1)));
        assert_eq!((t.prompt_eval_count, t.eval_count), (5, 8));
    }
}
