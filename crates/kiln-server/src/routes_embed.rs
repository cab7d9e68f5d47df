//! Embeddings over HTTP: Ollama's `/api/embed` and legacy `/api/embeddings`, and OpenAI's
//! `/v1/embeddings`. All three queue one batch on the model's thread and differ only in how
//! inputs and vectors are spelled.

use crate::capability::require_embedding;
use crate::error::{parse_json, ApiError, OpenAiError};
use crate::keep_alive::{self, KeepAlive};
use crate::options::{check_num_ctx, OllamaOptions};
use crate::registry::ModelEntry;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use kiln_engine::{EmbedInput, EmbedOptions, Embeddings};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    pub model: String,
    /// A string or a list of strings.
    #[serde(default)]
    pub input: Value,
    pub truncate: Option<bool>,
    pub dimensions: Option<usize>,
    pub options: Option<OllamaOptions>,
    pub keep_alive: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    pub options: Option<OllamaOptions>,
    pub keep_alive: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct OpenAiEmbeddingRequest {
    pub model: String,
    /// A string, a list of strings, a list of token ids, or a list of such lists.
    pub input: Value,
    pub encoding_format: Option<String>,
    pub dimensions: Option<usize>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Ollama's `input`: one string (none when empty) or a list of strings.
fn ollama_inputs(input: Value) -> Result<Vec<EmbedInput>, ApiError> {
    let bad = || ApiError::bad_request("invalid input type: expected a string or a list of strings");
    match input {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![EmbedInput::Text(s)]),
        Value::Array(items) => {
            items.into_iter().map(|v| v.as_str().map(|s| EmbedInput::Text(s.to_string())).ok_or_else(bad)).collect()
        }
        _ => Err(bad()),
    }
}

/// A list of token ids, if `v` is one.
fn token_ids(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?.iter().map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok())).collect()
}

/// OpenAI's `input`: a string, a list of strings, a list of token ids or a list of those.
/// Nothing in it may be empty, as OpenAI requires.
fn openai_inputs(input: &Value) -> Result<Vec<EmbedInput>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid input: expected a non-empty string, list of strings, list of token ids or list of such lists",
        )
    };
    let one = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Ok(EmbedInput::Text(s.clone())),
        Value::Array(a) if !a.is_empty() => token_ids(v).map(EmbedInput::Tokens).ok_or_else(bad),
        _ => Err(bad()),
    };
    match input {
        Value::Array(items) if items.is_empty() => Err(bad()),
        Value::Array(items) if items.iter().all(Value::is_number) => Ok(vec![one(input)?]),
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// The context an Ollama request asks for (its options over the model's PARAMETERs), if any.
fn num_ctx(model: &ModelEntry, options: Option<OllamaOptions>) -> Result<Option<usize>, ApiError> {
    let merged = options.unwrap_or_default().over(OllamaOptions::from_params(&model.spec.params)?);
    merged.num_ctx.map(check_num_ctx).transpose()
}

/// Loads the model if needed and embeds `inputs` (an embedding model, checked by the caller);
/// returns the vectors and the load time.
async fn embed(
    state: &AppState,
    model: &ModelEntry,
    inputs: Vec<EmbedInput>,
    options: EmbedOptions,
    keep_alive: Option<KeepAlive>,
) -> Result<(Embeddings, Duration), ApiError> {
    let (worker, load) = state.registry.worker(model, keep_alive).await?;
    let rx = worker.embed(inputs, options)?;
    let embedded = rx.await.map_err(|_| ApiError::internal("the model thread stopped"))??;
    Ok((embedded, load))
}

/// `POST /api/embed`: `{model, embeddings, total_duration, load_duration, prompt_eval_count}`.
/// An empty input only loads the model.
pub async fn ollama_embed(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let req: EmbedRequest = parse_json(&body)?;
    let keep_alive = req.keep_alive.as_ref().map(keep_alive::parse).transpose()?;
    let model = state.registry.find(&req.model)?;
    let options = EmbedOptions {
        truncate: req.truncate.unwrap_or(true),
        num_ctx: num_ctx(&model, req.options)?,
        normalize: true,
        dimensions: req.dimensions.filter(|&d| d > 0),
    };
    require_embedding(&model, &req.model)?;
    let inputs = ollama_inputs(req.input)?;
    if inputs.is_empty() {
        let (_, load) = state.registry.worker(&model, keep_alive).await?;
        return Ok(Json(json!({ "model": req.model, "embeddings": [], "load_duration": nanos(load) })));
    }
    let (e, load) = embed(&state, &model, inputs, options, keep_alive).await?;
    Ok(Json(json!({
        "model": req.model,
        "embeddings": e.vectors,
        "total_duration": nanos(started.elapsed()),
        "load_duration": nanos(load),
        "prompt_eval_count": e.prompt_tokens,
    })))
}

/// `POST /api/embeddings` (Ollama's older endpoint): `{embedding}` of one prompt, not
/// normalised, as Ollama returns it. An empty prompt only loads the model.
pub async fn ollama_embeddings(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let req: EmbeddingsRequest = parse_json(&body)?;
    let keep_alive = req.keep_alive.as_ref().map(keep_alive::parse).transpose()?;
    let model = state.registry.find(&req.model)?;
    let options = EmbedOptions { num_ctx: num_ctx(&model, req.options)?, normalize: false, ..EmbedOptions::default() };
    require_embedding(&model, &req.model)?;
    if req.prompt.is_empty() {
        state.registry.worker(&model, keep_alive).await?;
        return Ok(Json(json!({ "embedding": [] })));
    }
    let (mut e, _) = embed(&state, &model, vec![EmbedInput::Text(req.prompt)], options, keep_alive).await?;
    Ok(Json(json!({ "embedding": e.vectors.pop().unwrap_or_default() })))
}

/// `POST /v1/embeddings`: OpenAI's list of `{object, index, embedding}` with usage. Vectors
/// are unit length; `dimensions` keeps that many leading dimensions, renormalised, as
/// OpenAI's models that accept it do; `encoding_format: "base64"` sends the little-endian f32
/// bytes of each vector in base64.
pub async fn openai_embeddings(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, OpenAiError> {
    let req: OpenAiEmbeddingRequest = parse_json(&body)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid encoding_format {other:?}: expected \"float\" or \"base64\""
            ))
            .into())
        }
    };
    let inputs = openai_inputs(&req.input)?;
    let model = state.registry.find(&req.model)?;
    require_embedding(&model, &req.model)?;
    let options = EmbedOptions { dimensions: req.dimensions, ..EmbedOptions::default() };
    let (e, _) = embed(&state, &model, inputs, options, None).await?;
    let data: Vec<Value> = e
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 { Value::String(f32_base64(v)) } else { json!(v) };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let tokens = e.prompt_tokens;
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}

/// Standard base64 (with padding) of the vector's little-endian f32 bytes.
fn f32_base64(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32_with_padding() {
        // 1.0f32 = 00 00 80 3f; base64 of those bytes is "AACAPw==".
        assert_eq!(f32_base64(&[1.0]), "AACAPw==");
        // -2.0f32 = 00 00 00 c0: with 1.0, eight bytes, "AACAPwAAAMA=".
        assert_eq!(f32_base64(&[1.0, -2.0]), "AACAPwAAAMA=");
        assert_eq!(f32_base64(&[]), "");
    }

    #[test]
    fn ollama_input_is_a_string_or_strings() {
        assert_eq!(ollama_inputs(json!("hi")).unwrap(), [EmbedInput::Text("hi".into())]);
        assert_eq!(ollama_inputs(json!(["a", "b"])).unwrap().len(), 2);
        assert!(ollama_inputs(json!("")).unwrap().is_empty());
        assert!(ollama_inputs(Value::Null).unwrap().is_empty());
        assert!(ollama_inputs(json!([1, 2])).unwrap_err().message.contains("invalid input type"));
        assert!(ollama_inputs(json!({"a": 1})).is_err());
    }

    #[test]
    fn openai_input_takes_strings_and_token_ids() {
        assert_eq!(openai_inputs(&json!("hi")).unwrap(), [EmbedInput::Text("hi".into())]);
        assert_eq!(openai_inputs(&json!([5, 6])).unwrap(), [EmbedInput::Tokens(vec![5, 6])]);
        assert_eq!(
            openai_inputs(&json!([[5], "x"])).unwrap(),
            [EmbedInput::Tokens(vec![5]), EmbedInput::Text("x".into())]
        );
        for bad in [json!(""), json!([]), json!([""]), json!([[]]), json!([-1]), json!(3), json!([1.5])] {
            assert!(openai_inputs(&bad).is_err(), "{bad}");
        }
    }
}
