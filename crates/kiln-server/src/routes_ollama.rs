//! Ollama's native API: `/api/generate`, `/api/chat`, `/api/tags`, `/api/show`, `/api/ps`.
//! Streams are newline-delimited JSON; durations are nanoseconds.

use crate::capability::require_generation;
use crate::clock::rfc3339;
use crate::dispatch::{self, Running};
use crate::error::{parse_json, ApiError};
use crate::keep_alive::{self, KeepAlive};
use crate::logprobs;
use crate::options::{OllamaOptions, RequestOptions};
use crate::registry::ModelEntry;
use crate::structured;
use crate::tool_api::{chat_calls, ollama_calls, RequestToolCall};
use crate::worker::{ChatPrompt, Done, Event, Prompt};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_engine::chat_template::ChatMessage;
use kiln_engine::logprobs::TokenLogprob;
use kiln_engine::prompt::ChatExtras;
use kiln_engine::reasoning::ThinkingTags;
use kiln_engine::tools::{ToolCall, ToolChoice, ToolFormat};
use kiln_library::gguf_info::describe;
use kiln_library::modelfile::Modelfile;
use kiln_library::parameters;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Deserialize)]
pub struct GenerateRequest {
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    pub system: Option<String>,
    pub template: Option<String>,
    pub suffix: Option<String>,
    #[serde(default)]
    pub raw: bool,
    pub stream: Option<bool>,
    pub options: Option<OllamaOptions>,
    pub images: Option<Vec<String>>,
    pub format: Option<Value>,
    pub keep_alive: Option<Value>,
    pub think: Option<Think>,
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct OllamaMessage {
    pub role: String,
    #[serde(default)]
    pub content: String,
    pub images: Option<Vec<String>>,
    pub tool_calls: Option<Vec<RequestToolCall>>,
    /// On a tool result: the function that gave it.
    pub tool_name: Option<String>,
    pub tool_call_id: Option<String>,
}

impl OllamaMessage {
    fn into_chat(self) -> Result<ChatMessage, ApiError> {
        let tool_calls = chat_calls(self.tool_calls)?;
        let (tool_call_id, name) = (self.tool_call_id, self.tool_name);
        Ok(ChatMessage { tool_calls, tool_call_id, name, ..ChatMessage::new(self.role, self.content) })
    }
}

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    #[serde(default)]
    pub messages: Vec<OllamaMessage>,
    pub stream: Option<bool>,
    pub options: Option<OllamaOptions>,
    pub format: Option<Value>,
    pub tools: Option<Vec<Value>>,
    pub keep_alive: Option<Value>,
    pub think: Option<Think>,
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<u32>,
}

/// `think`: a switch, or an effort level (which turns thinking on).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Think {
    On(bool),
    Level(String),
}

impl Think {
    fn enabled(&self) -> Result<bool, ApiError> {
        match self {
            Think::On(b) => Ok(*b),
            Think::Level(l) if ["low", "medium", "high", "max"].contains(&l.as_str()) => Ok(true),
            Think::Level(l) => Err(ApiError::bad_request(format!(
                "invalid think value {l:?}: expected true, false, \"low\", \"medium\", \"high\" or \"max\""
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ShowRequest {
    #[serde(alias = "name")]
    pub model: String,
}

fn no_images(images: &Option<Vec<String>>) -> Result<(), ApiError> {
    match images {
        Some(v) if !v.is_empty() => {
            Err(ApiError::bad_request("images are not supported: kiln serves text-only models"))
        }
        _ => Ok(()),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The fields of a final chunk after `done`.
fn final_fields(obj: &mut serde_json::Map<String, Value>, run_load: Duration, started: Instant, d: &Done) {
    obj.insert("done_reason".into(), d.done_reason.as_str().into());
    obj.insert("total_duration".into(), nanos(started.elapsed()).into());
    obj.insert("load_duration".into(), nanos(run_load + d.load_duration).into());
    obj.insert("prompt_eval_count".into(), d.prompt_tokens.into());
    obj.insert("prompt_eval_duration".into(), nanos(d.prompt_eval_duration).into());
    obj.insert("eval_count".into(), d.eval_count.into());
    obj.insert("eval_duration".into(), nanos(d.eval_duration).into());
}

/// Which field carries the text: `response` for generate, `message` for chat.
#[derive(Clone, Copy)]
enum Kind {
    Generate,
    Chat,
}

/// One chunk of an answer: content, and thinking (a field only present when there is some).
fn chunk(kind: Kind, model: &str, text: &str, thinking: &str, done: bool) -> serde_json::Map<String, Value> {
    let mut obj = serde_json::Map::new();
    obj.insert("model".into(), model.into());
    obj.insert("created_at".into(), rfc3339(SystemTime::now()).into());
    match kind {
        Kind::Generate => {
            obj.insert("response".into(), text.into());
            if !thinking.is_empty() {
                obj.insert("thinking".into(), thinking.into());
            }
        }
        Kind::Chat => {
            let mut message = json!({ "role": "assistant", "content": text });
            if !thinking.is_empty() {
                message["thinking"] = thinking.into();
            }
            obj.insert("message".into(), message);
        }
    };
    obj.insert("done".into(), done.into());
    obj
}

/// Adds tool calls, the first the answer's `first`-th, to a chat chunk's message (a whole call
/// per chunk, as Ollama streams them).
fn with_calls(obj: &mut serde_json::Map<String, Value>, calls: &[ToolCall], first: usize) {
    if let Some(message) = obj.get_mut("message").filter(|_| !calls.is_empty()) {
        message["tool_calls"] = ollama_calls(calls, first);
    }
}

fn ndjson(v: &serde_json::Map<String, Value>) -> String {
    let mut s = serde_json::to_string(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The reply to an empty prompt: the model is loaded and nothing is generated, or, with a
/// keep-alive of zero, unloaded.
async fn load_only(
    state: &AppState,
    kind: Kind,
    model_name: &str,
    keep_alive: Option<KeepAlive>,
    started: Instant,
) -> Result<Response, ApiError> {
    let model = state.registry.find(model_name)?;
    let mut obj = chunk(kind, &model.name, "", "", true);
    if keep_alive == Some(Some(Duration::ZERO)) {
        // A busy model unloads as soon as its requests finish (the reaper sees zero keep-alive).
        if !state.registry.unload(&model).await {
            state.registry.worker(&model, keep_alive).await?;
        }
        obj.insert("done_reason".into(), "unload".into());
        obj.insert("total_duration".into(), nanos(started.elapsed()).into());
        return Ok(Json(obj).into_response());
    }
    let (_, load) = state.registry.worker(&model, keep_alive).await?;
    obj.insert("done_reason".into(), "load".into());
    obj.insert("total_duration".into(), nanos(started.elapsed()).into());
    obj.insert("load_duration".into(), nanos(load).into());
    Ok(Json(obj).into_response())
}

/// What a generate or chat request asks for, once validated.
struct Ask {
    model: ModelEntry,
    prompt: Prompt,
    options: RequestOptions,
    keep_alive: Option<KeepAlive>,
    stream: bool,
}

/// Runs a request and answers as one object or as NDJSON.
async fn respond(state: &AppState, kind: Kind, ask: Ask, started: Instant) -> Result<Response, ApiError> {
    let Ask { model, prompt, options, keep_alive, stream } = ask;
    let run = dispatch::start(&state.registry, &model, prompt, options, keep_alive, started).await?;
    let model_name = model.name;
    if !stream {
        let (mut answer, done, run) = run.collect().await?;
        let mut obj = chunk(kind, &model_name, &answer.content, &answer.thinking, true);
        add_logprobs(&mut obj, &mut answer.logprobs);
        with_calls(&mut obj, &answer.tool_calls, 0);
        final_fields(&mut obj, run.load, run.started, &done);
        return Ok(Json(obj).into_response());
    }
    let (load, started) = (run.load, run.started);
    // Logprobs wait for the text their tokens complete and ride on its chunk.
    let mut pending = Vec::new();
    let mut calls = 0;
    let body = Running::stream(run, move |ev| match ev {
        Event::Logprob(lp) => {
            pending.push(lp);
            String::new()
        }
        Event::Text(t) => {
            let mut obj = chunk(kind, &model_name, &t, "", false);
            add_logprobs(&mut obj, &mut pending);
            ndjson(&obj)
        }
        Event::Thinking(t) => {
            let mut obj = chunk(kind, &model_name, "", &t, false);
            add_logprobs(&mut obj, &mut pending);
            ndjson(&obj)
        }
        Event::ToolCall(c) => {
            let mut obj = chunk(kind, &model_name, "", "", false);
            with_calls(&mut obj, &[c], calls);
            calls += 1;
            ndjson(&obj)
        }
        Event::Done(d) => {
            let mut obj = chunk(kind, &model_name, "", "", true);
            // Tokens whose text never came (a stop string's) still report their logprobs.
            add_logprobs(&mut obj, &mut pending);
            final_fields(&mut obj, load, started, &d);
            ndjson(&obj)
        }
        // The status line is already sent; Ollama ends such a stream with an error object.
        Event::Error(e) => ndjson(&json!({ "error": e.message }).as_object().cloned().unwrap_or_default()),
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Moves `pending` logprobs into the chunk's `logprobs` field, which is absent when there
/// are none (as Ollama omits it).
fn add_logprobs(obj: &mut serde_json::Map<String, Value>, pending: &mut Vec<TokenLogprob>) {
    if !pending.is_empty() {
        obj.insert("logprobs".into(), logprobs::entries(&std::mem::take(pending)));
    }
}

/// The request's options over the model's parameters.
fn options_for(model: &ModelEntry, options: Option<OllamaOptions>) -> Result<RequestOptions, ApiError> {
    let base = OllamaOptions::from_params(&model.spec.params)?;
    options.unwrap_or_default().over(base).resolve()
}

/// A template given in a request, else the model's.
fn template_for(model: &ModelEntry, requested: Option<String>) -> Option<std::sync::Arc<str>> {
    requested.filter(|t| !t.is_empty()).or_else(|| model.spec.template.clone()).map(Into::into)
}

pub async fn generate(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: GenerateRequest = parse_json(&body)?;
    no_images(&req.images)?;
    let grammar = structured::ollama_format(req.format.as_ref())?;
    let think = req.think.as_ref().map(Think::enabled).transpose()?;
    let keep_alive = req.keep_alive.as_ref().map(keep_alive::parse).transpose()?;
    let model = state.registry.find(&req.model)?;
    require_generation(&model, &req.model, "generate")?;
    let mut options = options_for(&model, req.options)?;
    options.generate.grammar = grammar;
    options.generate.logprobs = logprobs::requested(req.logprobs, req.top_logprobs)?;
    if req.prompt.is_empty() {
        return load_only(&state, Kind::Generate, &req.model, keep_alive, started).await;
    }
    let system = req.system.or_else(|| model.spec.system.clone()).filter(|s| !s.is_empty());
    let suffix = req.suffix.filter(|s| !s.is_empty());
    let prompt = if req.raw {
        Prompt::Raw(req.prompt)
    } else if let Some(suffix) = suffix {
        Prompt::Fill { system, prompt: req.prompt, suffix, template: template_for(&model, req.template) }
    } else {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(ChatMessage::new("system", system));
        }
        messages.extend(model.few_shot());
        messages.push(ChatMessage::new("user", req.prompt));
        let template = template_for(&model, req.template);
        Prompt::Chat(ChatPrompt {
            messages,
            template,
            extras: ChatExtras { tools: None, think },
            ..ChatPrompt::default()
        })
    };
    let ask = Ask { model, prompt, options, keep_alive, stream: req.stream.unwrap_or(true) };
    respond(&state, Kind::Generate, ask, started).await
}

pub async fn chat(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let started = Instant::now();
    let req: ChatRequest = parse_json(&body)?;
    let grammar = structured::ollama_format(req.format.as_ref())?;
    for m in &req.messages {
        no_images(&m.images)?;
    }
    let think = req.think.as_ref().map(Think::enabled).transpose()?;
    let keep_alive = req.keep_alive.as_ref().map(keep_alive::parse).transpose()?;
    let model = state.registry.find(&req.model)?;
    require_generation(&model, &req.model, "chat")?;
    let mut options = options_for(&model, req.options)?;
    options.generate.grammar = grammar;
    options.generate.logprobs = logprobs::requested(req.logprobs, req.top_logprobs)?;
    if req.messages.is_empty() {
        return load_only(&state, Kind::Chat, &req.model, keep_alive, started).await;
    }
    let conversation = req.messages.into_iter().map(OllamaMessage::into_chat).collect::<Result<_, _>>()?;
    let tools = req.tools.filter(|t| !t.is_empty()).map(Value::Array);
    let prompt = model.chat_prompt(conversation, ChatExtras { tools, think }, ToolChoice::Auto);
    let ask = Ask { model, prompt, options, keep_alive, stream: req.stream.unwrap_or(true) };
    respond(&state, Kind::Chat, ask, started).await
}

/// Ollama's `details` object: from the config blob for library models, from the GGUF's
/// metadata for files given on the command line.
fn details(m: &ModelEntry) -> Value {
    let c = &m.spec.config;
    if !c.model_format.is_empty() {
        return json!({
            "parent_model": "",
            "format": c.model_format,
            "family": c.model_family,
            "families": c.model_families,
            "parameter_size": c.model_type,
            "quantization_level": c.file_type,
        });
    }
    describe(&m.path).map(|i| i.details()).unwrap_or_else(|_| json!({ "format": "gguf" }))
}

/// One model as `/api/tags` and `/api/ps` list it. May read the file's metadata and digest,
/// so it runs on a blocking thread.
fn model_summary(state: &AppState, m: &ModelEntry) -> serde_json::Map<String, Value> {
    let digest = state.registry.digest(m).unwrap_or_default();
    let mut obj = serde_json::Map::new();
    obj.insert("name".into(), m.tagged().into());
    obj.insert("model".into(), m.tagged().into());
    obj.insert("modified_at".into(), rfc3339(m.modified).into());
    obj.insert("size".into(), m.size.into());
    obj.insert("digest".into(), digest.into());
    obj.insert("details".into(), details(m));
    obj
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("a background task failed: {e}")))
}

pub async fn tags(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let models: Vec<Value> =
            state.registry.list().iter().map(|m| Value::Object(model_summary(&state, m))).collect();
        Json(json!({ "models": models }))
    })
    .await
}

pub async fn ps(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let loaded = state.registry.loaded().await;
    blocking(move || {
        let models: Vec<Value> = loaded
            .iter()
            .map(|(m, w, expires)| {
                let mut obj = model_summary(&state, m);
                obj.remove("modified_at");
                // What the model holds in memory: weights and KV cache, as Ollama reports it.
                obj.insert("size".into(), (m.size + w.kv_bytes()).into());
                // A model kept for good is shown expiring in a hundred years, as Ollama does.
                let left = match expires {
                    Some(t) => t.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(100 * 365 * 86_400),
                };
                obj.insert("expires_at".into(), rfc3339(SystemTime::now() + left).into());
                obj.insert("size_vram".into(), 0.into());
                obj.insert("context_length".into(), w.num_ctx.load(std::sync::atomic::Ordering::Relaxed).into());
                // Not in Ollama's answer: what a token of context costs this model (latent
                // attention's is a fraction of per-head keys and values').
                obj.insert("kv_bytes_per_token".into(), w.kv_bytes_per_token().into());
                Value::Object(obj)
            })
            .collect();
        Json(json!({ "models": models }))
    })
    .await
}

/// What the model can do, as `/api/show` reports it (Continue offers autocomplete for
/// models with `insert`): an embedding model only embeds.
fn capabilities(metadata: &serde_json::Map<String, Value>, template: &str) -> Vec<&'static str> {
    let architecture = metadata.get("general.architecture").and_then(Value::as_str);
    if architecture.and_then(kiln_models::EncoderArch::from_name).is_some() {
        return vec!["embedding"];
    }
    let mut caps = vec!["completion"];
    // Code models' vocabularies name their fill-in-the-middle tokens, which fill without a template.
    let fim_tokens =
        ["pre", "suf", "mid"].iter().all(|t| metadata.contains_key(&format!("tokenizer.ggml.fim_{t}_token_id")));
    if kiln_engine::prompt::supports_suffix(template) || fim_tokens {
        caps.push("insert");
    }
    if ThinkingTags::of_template(template).is_some() {
        caps.push("thinking");
    }
    if ToolFormat::of_template(template).is_some() {
        caps.push("tools");
    }
    caps
}

pub async fn show(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: ShowRequest = parse_json(&body)?;
    let model = state.registry.find(&req.model)?;
    blocking(move || {
        let info = describe(&model.path).map_err(|e| ApiError::internal(format!("reading {}: {e}", model.name)))?;
        let spec = &model.spec;
        let template = spec.template.clone().or(info.template.clone()).unwrap_or_default();
        let licenses = if spec.licenses.is_empty() { info.license.iter().cloned().collect() } else { spec.licenses.clone() };
        let modelfile = Modelfile {
            from: model.path.display().to_string(),
            parameters: parameters::to_pairs(&spec.params),
            template: (!template.is_empty()).then(|| template.clone()),
            system: spec.system.clone(),
            messages: spec.messages.iter().map(|m| (m.role.clone(), m.content.clone())).collect(),
            licenses: licenses.clone(),
            ..Modelfile::default()
        };
        let header = format!(
            "# Modelfile generated by \"kiln show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {}\n\n",
            model.name
        );
        Ok(Json(json!({
            "modelfile": header + &modelfile.render(),
            "parameters": parameters::to_lines(&spec.params),
            "template": template,
            "system": spec.system.clone().unwrap_or_default(),
            "license": licenses.join("\n"),
            "messages": spec.messages,
            "details": details(&model),
            "model_info": Value::Object(info.metadata.clone()),
            "capabilities": capabilities(&info.metadata, &template),
            "modified_at": rfc3339(model.modified),
        })))
    })
    .await?
}

pub async fn root() -> &'static str {
    "Kiln is running"
}

pub async fn version() -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_request_parses_with_defaults() {
        let r: GenerateRequest = parse_json(br#"{"model":"m"}"#).unwrap();
        assert_eq!((r.model.as_str(), r.prompt.as_str(), r.raw, r.stream), ("m", "", false, None));
        let r: GenerateRequest =
            parse_json(br#"{"model":"m","prompt":"p","raw":true,"stream":false,"options":{"num_predict":8}}"#).unwrap();
        assert_eq!(r.options.unwrap().resolve().unwrap().generate.max_tokens, Some(8));
        assert!(parse_json::<GenerateRequest>(br#"{"model":"m","stream":"yes"}"#).is_err());
        assert!(parse_json::<GenerateRequest>(br#"{"prompt":"p"}"#).is_err());
    }

    #[test]
    fn images_are_refused() {
        assert!(no_images(&Some(vec!["aGk=".into()])).is_err());
        assert!(no_images(&Some(vec![])).is_ok());
    }

    #[test]
    fn embedding_models_only_embed() {
        let meta = |pairs: &[(&str, Value)]| pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert_eq!(capabilities(&meta(&[("general.architecture", json!("bert"))]), ""), ["embedding"]);
        assert_eq!(capabilities(&meta(&[("general.architecture", json!("nomic-bert"))]), ""), ["embedding"]);
        assert_eq!(capabilities(&meta(&[("general.architecture", json!("llama"))]), ""), ["completion"]);
        assert_eq!(capabilities(&meta(&[]), ""), ["completion"]);
        let fim = meta(&[
            ("tokenizer.ggml.fim_pre_token_id", json!(1)),
            ("tokenizer.ggml.fim_suf_token_id", json!(2)),
            ("tokenizer.ggml.fim_mid_token_id", json!(3)),
        ]);
        assert_eq!(capabilities(&fim, ""), ["completion", "insert"]);
    }

    #[test]
    fn chunks_have_the_fields_clients_read() {
        let c = chunk(Kind::Chat, "m", "hi", "", false);
        assert_eq!(c["message"]["content"], "hi");
        assert!(c["message"].get("thinking").is_none());
        assert_eq!(c["done"], false);
        let c = chunk(Kind::Chat, "m", "", "hmm", false);
        assert_eq!((c["message"]["content"].as_str(), c["message"]["thinking"].as_str()), (Some(""), Some("hmm")));
        let c = chunk(Kind::Generate, "m", "hi", "", true);
        assert_eq!(c["response"], "hi");
        assert!(c.get("thinking").is_none());
        assert_eq!(chunk(Kind::Generate, "m", "", "hmm", false)["thinking"], "hmm");
        assert!(ndjson(&c).ends_with("}\n"));
    }
}
