//! OpenAI's API: `/v1/chat/completions`, `/v1/completions`, `/v1/models`. Streams are
//! server-sent events ending with `data: [DONE]`; errors use OpenAI's envelope.

use crate::capability::require_generation;
use crate::choices;
use crate::clock::unix_seconds;
use crate::dispatch::{self, Answer};
use crate::error::{parse_json, ApiError, OpenAiError};
use crate::logprobs;
use crate::options::{OllamaOptions, OpenAiSampling, RequestOptions};
use crate::registry::ModelEntry;
use crate::structured::OpenAiStructured;
use crate::tool_api::{chat_calls, openai_call, openai_tool_choice, RequestToolCall};
use crate::worker::{Done, Event, Prompt};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use kiln_engine::chat_template::ChatMessage;
use kiln_engine::logprobs::TokenLogprob;
use kiln_engine::prompt::ChatExtras;
use kiln_engine::tools::ToolCall;
use kiln_engine::DoneReason;
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    pub tool_calls: Option<Vec<RequestToolCall>>,
    pub tool_call_id: Option<String>,
    pub name: Option<String>,
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
    /// `none` turns a reasoning model's thinking off; any other effort turns it on.
    pub reasoning_effort: Option<String>,
    /// The Responses API's spelling, which some clients also send here: `{effort}`.
    pub reasoning: Option<ReasoningOptions>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    #[serde(flatten)]
    pub sampling: OpenAiSampling,
    #[serde(flatten)]
    pub structured: OpenAiStructured,
}

#[derive(Debug, Deserialize)]
pub struct ReasoningOptions {
    pub effort: Option<String>,
}

impl ChatCompletionRequest {
    /// The thinking switch the requested effort stands for (`None`: the model's default).
    fn think(&self) -> Result<Option<bool>, ApiError> {
        let effort = self.reasoning_effort.as_deref().or(self.reasoning.as_ref().and_then(|r| r.effort.as_deref()));
        match effort {
            None => Ok(None),
            Some("none") => Ok(Some(false)),
            Some("minimal" | "low" | "medium" | "high" | "xhigh" | "max") => Ok(Some(true)),
            Some(e) => Err(ApiError::bad_request(format!(
                "invalid reasoning_effort {e:?}: expected none, minimal, low, medium, high, xhigh or max"
            ))),
        }
    }
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
    /// Legacy shape: a number of alternatives per token turns logprobs on.
    pub logprobs: Option<u32>,
    /// Repeat the prompt before the answer in the choice's text.
    #[serde(default)]
    pub echo: bool,
    /// Text after the insertion point: the answer fills in between (code completion).
    pub suffix: Option<String>,
    #[serde(flatten)]
    pub sampling: OpenAiSampling,
    #[serde(flatten)]
    pub structured: OpenAiStructured,
}

/// The request's options over the model's parameters, with the grammar it asks for.
fn options_for(
    model: &ModelEntry,
    sampling: &OpenAiSampling,
    structured: OpenAiStructured,
) -> Result<RequestOptions, ApiError> {
    let mut options = sampling.resolve(OllamaOptions::from_params(&model.spec.params)?)?;
    options.generate.grammar = structured.grammar()?;
    Ok(options)
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

/// Counts over every choice: they answer one prompt, which counts once.
fn usage(dones: &[Done]) -> Value {
    let prompt = dones.first().map_or(0, |d| d.prompt_tokens);
    let completion: usize = dones.iter().map(|d| d.eval_count).sum();
    // As OpenAI reports prompt caching: tokens served from the prefix cache by earlier
    // requests. The first choice's count; the others also reuse what it computed.
    let cached = dones.iter().map(|d| d.prompt_cached).min().unwrap_or(0);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": cached },
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

    /// A streamed choice carrying `piece` (or, with `finish`, the end of the answer).
    fn delta(self, piece: Piece, first: bool, finish: Option<&str>) -> Value {
        match self {
            Kind::Chat => {
                let mut delta = match (finish, piece) {
                    (Some(_), _) => json!({}),
                    (None, Piece::Content(text)) => json!({ "content": text }),
                    (None, Piece::Reasoning(text)) => Value::Object(reasoning(text)),
                    (None, Piece::Call(call, index)) => {
                        json!({ "tool_calls": [openai_call(call, new_id("call"), Some(index))] })
                    }
                };
                if first && finish.is_none() {
                    delta["role"] = "assistant".into();
                }
                json!({ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null })
            }
            Kind::Completion => {
                let text = match piece {
                    Piece::Content(t) | Piece::Reasoning(t) => t,
                    // Raw prompts are never parsed for calls.
                    Piece::Call(..) => "",
                };
                json!({ "index": 0, "text": text, "finish_reason": finish, "logprobs": null })
            }
        }
    }

    /// A choice's `logprobs` for these tokens; `offset` is where the first one starts in the
    /// choice's text (legacy completions report it) and moves past them.
    fn logprobs(self, lps: &[TokenLogprob], offset: &mut usize) -> Value {
        match self {
            Kind::Chat => json!({ "content": logprobs::entries(lps) }),
            Kind::Completion => logprobs::legacy(lps, offset),
        }
    }

    /// The whole answer as one choice.
    fn choice(self, answer: Answer, finish: &str) -> Value {
        match self {
            Kind::Chat => {
                let mut message = serde_json::Map::new();
                message.insert("role".into(), "assistant".into());
                message.insert("content".into(), answer.content.into());
                if !answer.thinking.is_empty() {
                    message.extend(reasoning(&answer.thinking));
                }
                if !answer.tool_calls.is_empty() {
                    let calls: Vec<Value> =
                        answer.tool_calls.iter().map(|c| openai_call(c, new_id("call"), None)).collect();
                    message.insert("tool_calls".into(), calls.into());
                    if message["content"] == "" {
                        message.insert("content".into(), Value::Null);
                    }
                }
                json!({ "index": 0, "message": message, "finish_reason": finish, "logprobs": null })
            }
            Kind::Completion => {
                json!({ "index": 0, "text": answer.content, "finish_reason": finish, "logprobs": null })
            }
        }
    }
}

/// What a streamed chunk carries.
#[derive(Clone, Copy)]
enum Piece<'a> {
    Content(&'a str),
    Reasoning(&'a str),
    /// A whole tool call, the answer's `index`-th.
    Call(&'a ToolCall, usize),
}

/// A reasoning model's thinking, under both names clients read: `reasoning_content`
/// (DeepSeek's API, which litellm, Aider and Continue follow) and `reasoning` (Ollama's and
/// vLLM's OpenAI-compatible endpoints).
fn reasoning(text: &str) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("reasoning_content".into(), text.into());
    fields.insert("reasoning".into(), text.into());
    fields
}

/// How to answer: streamed or not, with usage at the end of a stream, with the prompt
/// repeated before the answer (`echo`, empty when not asked for), with `n` choices.
struct Reply {
    stream: bool,
    include_usage: bool,
    echo: String,
    n: usize,
}

/// What every object of one response repeats.
#[derive(Clone)]
struct Header {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
}

impl Header {
    fn envelope(&self, choices: Value, streaming: bool) -> Value {
        json!({
            "id": self.id,
            "object": self.kind.object(streaming),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "kiln",
            "choices": choices,
        })
    }
}

async fn respond(
    state: &AppState,
    kind: Kind,
    model: ModelEntry,
    prompt: Prompt,
    options: RequestOptions,
    reply: Reply,
) -> Result<Response, OpenAiError> {
    let Reply { stream, include_usage, echo, n } = reply;
    let with_logprobs = options.generate.logprobs.is_some();
    let started = Instant::now();
    let starts = choices::split(options, n)
        .into_iter()
        .map(|o| dispatch::start(&state.registry, &model, prompt.clone(), o, None, started));
    let runs = futures_util::future::try_join_all(starts).await?;
    let prefix = match kind {
        Kind::Chat => "chatcmpl",
        Kind::Completion => "cmpl",
    };
    let head = Header { kind, id: new_id(prefix), created: unix_seconds(SystemTime::now()), model: model.name };
    if !stream {
        let mut choices = Vec::with_capacity(n);
        let mut dones = Vec::with_capacity(n);
        for (index, run) in runs.into_iter().enumerate() {
            let (mut answer, done, _) = run.collect().await?;
            let lps = std::mem::take(&mut answer.logprobs);
            answer.content.insert_str(0, &echo);
            let finish = if answer.tool_calls.is_empty() { finish_reason(done.done_reason) } else { "tool_calls" };
            let mut choice = kind.choice(answer, finish);
            choice["index"] = index.into();
            if with_logprobs {
                choice["logprobs"] = kind.logprobs(&lps, &mut 0);
            }
            choices.push(choice);
            dones.push(done);
        }
        let mut body = head.envelope(choices.into(), false);
        body["usage"] = usage(&dones);
        return Ok(Json(body).into_response());
    }
    let dones = Arc::new(Mutex::new(Vec::new()));
    let streams: Vec<_> = runs
        .into_iter()
        .enumerate()
        .map(|(index, run)| Box::pin(run.chunks(choice_chunks(head.clone(), index, echo.clone(), Arc::clone(&dones)))))
        .collect();
    let end = futures_util::stream::once(async move {
        let dones = dones.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        if include_usage && !dones.is_empty() {
            let mut last = head.envelope(json!([]), true);
            last["usage"] = usage(&dones);
            out.push_str(&sse(&last));
        }
        out.push_str("data: [DONE]\n\n");
        out
    });
    let body = Body::from_stream(futures_util::stream::select_all(streams).chain(end).map(Ok::<_, Infallible>));
    Ok(([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response())
}

/// Spells one choice's events as server-sent chunks; its counts go to `dones` when it ends.
fn choice_chunks(
    h: Header,
    index: usize,
    mut echo: String,
    dones: Arc<Mutex<Vec<Done>>>,
) -> impl FnMut(Event) -> String + Send + 'static {
    let kind = h.kind;
    let mut first = true;
    // Logprobs wait for the text their tokens complete and ride on its chunk.
    let mut pending = Vec::new();
    let mut offset = 0;
    let mut calls = 0;
    move |ev| {
        // An empty answer still opens with the assistant's role, and tokens whose text never
        // came (a stop string's) still report their logprobs.
        let open_before_done = first || !pending.is_empty() || !echo.is_empty();
        let mut piece = |p: Piece| {
            let mut delta = kind.delta(p, first, None);
            delta["index"] = index.into();
            if !pending.is_empty() {
                delta["logprobs"] = kind.logprobs(&std::mem::take(&mut pending), &mut offset);
            }
            first = false;
            sse(&h.envelope(json!([delta]), true))
        };
        match ev {
            Event::Logprob(lp) => {
                pending.push(lp);
                String::new()
            }
            Event::Text(t) => piece(Piece::Content(&(std::mem::take(&mut echo) + &t))),
            Event::Thinking(t) => piece(Piece::Reasoning(&t)),
            Event::ToolCall(c) => {
                let chunk = piece(Piece::Call(&c, calls));
                calls += 1;
                chunk
            }
            Event::Done(d) => {
                let mut out = String::new();
                if open_before_done {
                    out.push_str(&piece(Piece::Content(&std::mem::take(&mut echo))));
                }
                let reason = if calls == 0 { finish_reason(d.done_reason) } else { "tool_calls" };
                let mut finish = kind.delta(Piece::Content(""), false, Some(reason));
                finish["index"] = index.into();
                out.push_str(&sse(&h.envelope(json!([finish]), true)));
                dones.lock().unwrap_or_else(|e| e.into_inner()).push(d);
                out
            }
            Event::Error(e) => sse(&OpenAiError(e).body()),
        }
    }
}

pub async fn chat_completions(State(state): State<AppState>, body: Bytes) -> Result<Response, OpenAiError> {
    let req: ChatCompletionRequest = parse_json(&body)?;
    let n = choices::count(req.n)?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("messages must not be empty").into());
    }
    let think = req.think()?;
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in req.messages {
        let content = m.content.map(Content::into_text).transpose()?.unwrap_or_default();
        // OpenAI's newer name for the system role; chat templates know only "system".
        let role = if m.role == "developer" { "system".to_string() } else { m.role };
        let tool_calls = chat_calls(m.tool_calls)?;
        messages.push(ChatMessage {
            tool_calls,
            tool_call_id: m.tool_call_id,
            name: m.name,
            ..ChatMessage::new(role, content)
        });
    }
    let tool_choice = openai_tool_choice(req.tool_choice.as_ref())?;
    let tools = req.tools.filter(|t| !t.is_empty()).map(Value::Array);
    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let model = state.registry.find(&req.model)?;
    require_generation(&model, &req.model, "chat")?;
    let mut options = options_for(&model, &req.sampling, req.structured)?;
    options.generate.logprobs = logprobs::requested(req.logprobs.unwrap_or(false), req.top_logprobs)?;
    let prompt = model.chat_prompt(messages, ChatExtras { tools, think }, tool_choice);
    let reply = Reply { stream: req.stream, include_usage, echo: String::new(), n };
    respond(&state, Kind::Chat, model, prompt, options, reply).await
}

pub async fn completions(State(state): State<AppState>, body: Bytes) -> Result<Response, OpenAiError> {
    let req: CompletionRequest = parse_json(&body)?;
    let n = choices::count(req.n)?;
    let prompt = match req.prompt {
        PromptInput::One(p) => p,
        PromptInput::Many(mut v) if v.len() == 1 => v.remove(0),
        PromptInput::Many(_) => return Err(ApiError::bad_request("prompt must be one string").into()),
    };
    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let model = state.registry.find(&req.model)?;
    require_generation(&model, &req.model, "generate")?;
    let mut options = options_for(&model, &req.sampling, req.structured)?;
    options.generate.logprobs = logprobs::requested(req.logprobs.is_some(), req.logprobs)?;
    if req.echo && req.logprobs.is_some() {
        // Scoring a prompt this way needs logits at every prompt position, which the
        // scheduler does not keep; an answer without them would be silently wrong.
        return Err(ApiError::bad_request("echo with logprobs is not supported: prompt tokens get no logprobs").into());
    }
    let echo = if req.echo { prompt.clone() } else { String::new() };
    let reply = Reply { stream: req.stream, include_usage, echo, n };
    // With a suffix the model fills in between, through the template or its FIM tokens.
    let prompt = match req.suffix.filter(|s| !s.is_empty()) {
        Some(suffix) => {
            Prompt::Fill { system: None, prompt, suffix, template: model.spec.template.clone().map(Into::into) }
        }
        None => Prompt::Raw(prompt),
    };
    respond(&state, Kind::Completion, model, prompt, options, reply).await
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
    fn image_parts_are_refused() {
        let c: Content = serde_json::from_str(r#"[{"type":"image_url","image_url":{"url":"x"}}]"#).unwrap();
        assert!(c.into_text().is_err());
    }

    #[test]
    fn completion_prompt_forms() {
        let r: CompletionRequest = parse_json(br#"{"model":"m","prompt":["one"]}"#).unwrap();
        assert!(matches!(r.prompt, PromptInput::Many(v) if v == ["one"]));
        assert!(parse_json::<CompletionRequest>(br#"{"model":"m","prompt":[1,2]}"#).is_err());
    }

    #[test]
    fn stream_deltas_open_with_the_role() {
        let hi = Piece::Content("hi");
        assert_eq!(Kind::Chat.delta(hi, true, None)["delta"]["role"], "assistant");
        assert!(Kind::Chat.delta(hi, false, None)["delta"].get("role").is_none());
        assert_eq!(Kind::Chat.delta(hi, false, Some("stop"))["finish_reason"], "stop");
        assert_eq!(Kind::Completion.delta(Piece::Content("t"), true, None)["text"], "t");
        let thought = Kind::Chat.delta(Piece::Reasoning("hmm"), true, None)["delta"].clone();
        assert_eq!(thought, json!({ "role": "assistant", "reasoning_content": "hmm", "reasoning": "hmm" }));
    }

    #[test]
    fn reasoning_goes_beside_the_content() {
        let answer = Answer { content: "4".into(), thinking: "2+2".into(), ..Answer::default() };
        let m = Kind::Chat.choice(answer, "stop")["message"].clone();
        assert_eq!((m["content"].as_str(), m["reasoning_content"].as_str()), (Some("4"), Some("2+2")));
        let m = Kind::Chat.choice(Answer { content: "4".into(), ..Answer::default() }, "stop")["message"].clone();
        assert!(m.get("reasoning_content").is_none());
    }

    #[test]
    fn reasoning_effort_switches_thinking() {
        let think = |body: &str| parse_json::<ChatCompletionRequest>(body.as_bytes()).unwrap().think();
        assert_eq!(think(r#"{"model":"m","messages":[]}"#).unwrap(), None);
        assert_eq!(think(r#"{"model":"m","messages":[],"reasoning_effort":"none"}"#).unwrap(), Some(false));
        assert_eq!(think(r#"{"model":"m","messages":[],"reasoning_effort":"high"}"#).unwrap(), Some(true));
        assert_eq!(think(r#"{"model":"m","messages":[],"reasoning":{"effort":"low"}}"#).unwrap(), Some(true));
        assert!(think(r#"{"model":"m","messages":[],"reasoning_effort":"extreme"}"#).is_err());
    }

    #[test]
    fn tool_calls_go_in_the_message_and_the_stream() {
        let Value::Object(arguments) = json!({ "city": "Oslo" }) else { unreachable!() };
        let call = ToolCall { name: "get_weather".into(), arguments };
        let answer = Answer { tool_calls: vec![call.clone()], ..Answer::default() };
        let m = Kind::Chat.choice(answer, "tool_calls")["message"].clone();
        assert_eq!(m["content"], Value::Null);
        assert_eq!(
            m["tool_calls"][0]["function"],
            json!({ "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}" })
        );
        assert_eq!(m["tool_calls"][0]["type"], "function");
        let delta = Kind::Chat.delta(Piece::Call(&call, 1), false, None)["delta"].clone();
        assert_eq!((delta["tool_calls"][0]["index"].as_u64(), delta.get("content")), (Some(1), None));
        assert!(delta["tool_calls"][0]["id"].as_str().is_some_and(|id| id.starts_with("call-")));
    }
}
