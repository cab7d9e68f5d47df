//! OpenAI's API: `/v1/chat/completions`, `/v1/completions`, `/v1/models`. Streams are
//! server-sent events ending with `data: [DONE]`; errors use OpenAI's envelope.

use crate::capability::require_generation;
use crate::clock::unix_seconds;
use crate::dispatch::{self, Running};
use crate::error::{parse_json, ApiError, OpenAiError};
use crate::options::{OllamaOptions, OpenAiSampling};
use crate::registry::ModelEntry;
use crate::worker::{Done, Event, Prompt};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kiln_engine::chat_template::ChatMessage;
use kiln_engine::prompt::ChatExtras;
use kiln_engine::DoneReason;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

/// Message content: a string, or a list of parts of which only text is supported.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

impl Content {
    fn into_text(self) -> Result<String, ApiError> {
        match self {
            Content::Text(t) => Ok(t),
            Content::Parts(parts) => {
                let mut out = String::new();
                for p in parts {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => out.push_str(&t),
                        (kind, _) => {
                            return Err(ApiError::bad_request(format!(
                                "content parts of type '{kind}' are not supported: kiln serves text-only models"
                            )))
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct OpenAiMessage {
    pub role: String,
    pub content: Option<Content>,
}

#[derive(Debug, Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<OpenAiMessage>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub n: Option<u32>,
    #[serde(flatten)]
    pub sampling: OpenAiSampling,
}

/// A prompt: one string, or a list holding one string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: PromptInput,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub n: Option<u32>,
    #[serde(flatten)]
    pub sampling: OpenAiSampling,
}

fn check_n(n: Option<u32>) -> Result<(), ApiError> {
    match n {
        None | Some(1) => Ok(()),
        Some(n) => Err(ApiError::bad_request(format!("n = {n} is not supported: only one choice per request"))),
    }
}

/// A response id unique within this server's life.
fn new_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{:x}{:04x}", unix_seconds(SystemTime::now()), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn finish_reason(d: DoneReason) -> &'static str {
    match d {
        DoneReason::Length => "length",
        _ => "stop",
    }
}

fn usage(d: &Done) -> Value {
    json!({
        "prompt_tokens": d.prompt_tokens,
        "completion_tokens": d.eval_count,
        "total_tokens": d.prompt_tokens + d.eval_count,
        // As OpenAI reports prompt caching: tokens served from the prefix cache.
        "prompt_tokens_details": { "cached_tokens": d.prompt_cached },
    })
}

fn sse(v: &Value) -> String {
    format!("data: {}\n\n", serde_json::to_string(v).unwrap_or_default())
}

/// Which endpoint: chat (messages and deltas) or legacy completions (text).
#[derive(Clone, Copy)]
enum Kind {
    Chat,
    Completion,
}

impl Kind {
    fn object(self, streaming: bool) -> &'static str {
        match (self, streaming) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    /// A streamed choice carrying `text` (or, with `finish`, the end of the answer).
    fn delta(self, text: &str, first: bool, finish: Option<&str>) -> Value {
        match self {
            Kind::Chat => {
                let delta = match (first, finish) {
                    (_, Some(_)) => json!({}),
                    (true, None) => json!({ "role": "assistant", "content": text }),
                    (false, None) => json!({ "content": text }),
                };
                json!({ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null })
            }
            Kind::Completion => json!({ "index": 0, "text": text, "finish_reason": finish, "logprobs": null }),
        }
    }

    /// The whole answer as one choice.
    fn choice(self, text: String, finish: &str) -> Value {
        match self {
            Kind::Chat => json!({
                "index": 0,
                "message": { "role": "assistant", "content": text },
                "finish_reason": finish,
                "logprobs": null,
            }),
            Kind::Completion => json!({ "index": 0, "text": text, "finish_reason": finish, "logprobs": null }),
        }
    }
}

async fn respond(
    state: &AppState,
    kind: Kind,
    model: ModelEntry,
    prompt: Prompt,
    sampling: &OpenAiSampling,
    stream: bool,
    include_usage: bool,
) -> Result<Response, OpenAiError> {
    let options = sampling.resolve(OllamaOptions::from_params(&model.spec.params)?)?;
    let run = dispatch::start(&state.registry, &model, prompt, options, None, Instant::now()).await?;
    let model = model.name;
    let id = new_id(match kind {
        Kind::Chat => "chatcmpl",
        Kind::Completion => "cmpl",
    });
    let created = unix_seconds(SystemTime::now());
    if !stream {
        let (text, done, _) = run.collect().await?;
        return Ok(Json(json!({
            "id": id,
            "object": kind.object(false),
            "created": created,
            "model": model,
            "system_fingerprint": "kiln",
            "choices": [kind.choice(text, finish_reason(done.done_reason))],
            "usage": usage(&done),
        }))
        .into_response());
    }
    let mut first = true;
    let body = Running::stream(run, move |ev| {
        let envelope = |choices: Value| {
            json!({
                "id": id,
                "object": kind.object(true),
                "created": created,
                "model": model,
                "system_fingerprint": "kiln",
                "choices": choices,
            })
        };
        match ev {
            Event::Text(t) => {
                let chunk = envelope(json!([kind.delta(&t, first, None)]));
                first = false;
                sse(&chunk)
            }
            Event::Done(d) => {
                let mut out = String::new();
                if first {
                    // An empty answer still opens with the assistant's role.
                    out.push_str(&sse(&envelope(json!([kind.delta("", true, None)]))));
                }
                out.push_str(&sse(&envelope(json!([kind.delta("", false, Some(finish_reason(d.done_reason)))]))));
                if include_usage {
                    let mut last = envelope(json!([]));
                    last["usage"] = usage(&d);
                    out.push_str(&sse(&last));
                }
                out.push_str("data: [DONE]\n\n");
                out
            }
            Event::Error(e) => sse(&OpenAiError(e).body()),
        }
    });
    Ok(([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response())
}

pub async fn chat_completions(State(state): State<AppState>, body: Bytes) -> Result<Response, OpenAiError> {
    let req: ChatCompletionRequest = parse_json(&body)?;
    check_n(req.n)?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty").into());
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in req.messages {
        let content = m.content.map(Content::into_text).transpose()?.unwrap_or_default();
        // OpenAI's newer name for the system role; chat templates know only "system".
        let role = if m.role == "developer" { "system".to_string() } else { m.role };
        messages.push(ChatMessage::new(role, content));
    }
    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let model = state.registry.find(&req.model)?;
    require_generation(&model, &req.model, "chat")?;
    let prompt = model.chat_prompt(messages, ChatExtras::default());
    respond(&state, Kind::Chat, model, prompt, &req.sampling, req.stream, include_usage).await
}

pub async fn completions(State(state): State<AppState>, body: Bytes) -> Result<Response, OpenAiError> {
    let req: CompletionRequest = parse_json(&body)?;
    check_n(req.n)?;
    let prompt = match req.prompt {
        PromptInput::One(p) => p,
        PromptInput::Many(mut v) if v.len() == 1 => v.remove(0),
        PromptInput::Many(_) => return Err(ApiError::bad_request("prompt must be one string").into()),
    };
    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let model = state.registry.find(&req.model)?;
    require_generation(&model, &req.model, "generate")?;
    respond(&state, Kind::Completion, model, Prompt::Raw(prompt), &req.sampling, req.stream, include_usage).await
}

fn model_object(m: &ModelEntry) -> Value {
    json!({ "id": m.tagged(), "object": "model", "created": unix_seconds(m.modified), "owned_by": m.owner })
}

pub async fn list_models(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state.registry.list().iter().map(model_object).collect();
    Json(json!({ "object": "list", "data": data }))
}

pub async fn retrieve_model(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, OpenAiError> {
    Ok(Json(model_object(&state.registry.find(&id)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_request_parses_openai_shapes() {
        let r: ChatCompletionRequest = parse_json(
            br#"{"model":"m","messages":[{"role":"system","content":"s"},
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
                "stream":true,"stream_options":{"include_usage":true},"max_tokens":3,"stop":["x"],"num_ctx":1024}"#,
        )
        .unwrap();
        assert!(r.stream && r.stream_options.unwrap().include_usage);
        let o = r.sampling.resolve(OllamaOptions::default()).unwrap();
        assert_eq!((o.generate.max_tokens, o.num_ctx), (Some(3), 1024));
        let texts: Vec<String> = r.messages.into_iter().map(|m| m.content.unwrap().into_text().unwrap()).collect();
        assert_eq!(texts, ["s", "ab"]);
    }

    #[test]
    fn image_parts_and_several_choices_are_refused() {
        let c: Content = serde_json::from_str(r#"[{"type":"image_url","image_url":{"url":"x"}}]"#).unwrap();
        assert!(c.into_text().is_err());
        assert!(check_n(Some(2)).is_err());
        assert!(check_n(Some(1)).is_ok());
    }

    #[test]
    fn completion_prompt_forms() {
        let r: CompletionRequest = parse_json(br#"{"model":"m","prompt":["one"]}"#).unwrap();
        assert!(matches!(r.prompt, PromptInput::Many(v) if v == ["one"]));
        assert!(parse_json::<CompletionRequest>(br#"{"model":"m","prompt":[1,2]}"#).is_err());
    }

    #[test]
    fn stream_deltas_open_with_the_role() {
        assert_eq!(Kind::Chat.delta("hi", true, None)["delta"]["role"], "assistant");
        assert!(Kind::Chat.delta("hi", false, None)["delta"].get("role").is_none());
        assert_eq!(Kind::Chat.delta("", false, Some("stop"))["finish_reason"], "stop");
        assert_eq!(Kind::Completion.delta("t", true, None)["text"], "t");
    }
}
