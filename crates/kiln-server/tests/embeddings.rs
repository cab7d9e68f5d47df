//! The embedding routes end to end through the router: Ollama's `/api/embed` and
//! `/api/embeddings`, OpenAI's `/v1/embeddings`, capabilities, and the refusals between
//! embedding and generative models. The model is the tiny Nomic BERT fixture, whose vectors
//! llama.cpp computed (`crates/kiln-engine/tests/fixtures/nomic-bert-tiny.json`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use kiln_server::registry::Registry;
use kiln_server::{router, AppState};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kiln-engine/tests/fixtures").join(name)
}

fn app(models: Vec<(String, PathBuf)>) -> Router {
    let registry = Arc::new(Registry::new(None, models, Some(1)));
    router(AppState { registry, pull: Default::default() }, Default::default())
}

fn nomic_app() -> Router {
    app(vec![("nomic".into(), fixture("nomic-bert-tiny.gguf"))])
}

async fn post(app: &Router, uri: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(uri).header("content-type", "application/json").body(Body::from(body.to_string()));
    let response = app.clone().oneshot(request.unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// llama.cpp's vectors of the fixture's sentences.
fn reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(fixture("nomic-bert-tiny.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let sentences = v["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    (sentences, floats_rows(&v["embeddings"]))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn floats_rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().expect("array").iter().map(floats).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (norm(a) * norm(b))
}

fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn unbase64(s: &str) -> Vec<f32> {
    let value = |c: u8| {
        (match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }) as u32
    };
    let mut bytes = Vec::new();
    for quad in s.as_bytes().chunks(4) {
        let pad = quad.iter().filter(|&&c| c == b'=').count();
        let n = quad.iter().map(|&c| if c == b'=' { 0 } else { value(c) }).fold(0, |n, v| n << 6 | v);
        bytes.extend(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..3 - pad]);
    }
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[tokio::test]
async fn api_embed_batches_match_llama_cpp_and_report_counts() {
    let app = nomic_app();
    let (sentences, want) = reference();
    let (status, body) = post(&app, "/api/embed", json!({ "model": "nomic", "input": sentences })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model"], "nomic");
    let got = floats_rows(&body["embeddings"]);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((norm(g) - 1.0).abs() < 1e-5);
        assert!(cosine(g, w) > 0.9999);
    }
    assert!(body["prompt_eval_count"].as_u64().unwrap() > 2 * sentences.len() as u64);
    assert!(body["total_duration"].as_u64().unwrap() > 0);
    assert!(body["load_duration"].is_u64());

    // One string is a batch of one; an empty input only loads the model.
    let (status, one) = post(&app, "/api/embed", json!({ "model": "nomic", "input": sentences[0] })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(floats_rows(&one["embeddings"]), got[..1]);
    let (status, empty) = post(&app, "/api/embed", json!({ "model": "nomic", "input": [] })).await;
    assert_eq!((status, empty["embeddings"].clone()), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn api_embed_truncates_or_refuses_input_longer_than_the_context() {
    let app = nomic_app();
    let long = "the kiln was warm ".repeat(10);
    let (status, cut) =
        post(&app, "/api/embed", json!({ "model": "nomic", "input": long, "options": { "num_ctx": 8 } })).await;
    assert_eq!(status, StatusCode::OK, "{cut}");
    assert_eq!(cut["prompt_eval_count"], 8);
    let refused = json!({ "model": "nomic", "input": long, "truncate": false, "options": { "num_ctx": 8 } });
    let (status, body) = post(&app, "/api/embed", refused).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("context length of 8"), "{body}");
    let (status, body) = post(&app, "/api/embed", json!({ "model": "nomic", "input": [1, 2] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn legacy_embeddings_are_not_normalised() {
    let app = nomic_app();
    let (sentences, want) = reference();
    let (status, body) = post(&app, "/api/embeddings", json!({ "model": "nomic", "prompt": sentences[1] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = floats(&body["embedding"]);
    assert!((norm(&v) - 1.0).abs() > 1e-3, "norm {}", norm(&v));
    assert!(cosine(&v, &want[1]) > 0.9999);
}

#[tokio::test]
async fn openai_embeddings_in_float_and_base64() {
    let app = nomic_app();
    let (sentences, want) = reference();
    let request = |format: &str| json!({ "model": "nomic", "input": sentences[..3], "encoding_format": format });
    let (status, float) = post(&app, "/v1/embeddings", request("float")).await;
    assert_eq!(status, StatusCode::OK, "{float}");
    assert_eq!(float["object"], "list");
    let data = float["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let (status, b64) = post(&app, "/v1/embeddings", request("base64")).await;
    assert_eq!(status, StatusCode::OK, "{b64}");
    for (i, (f, b)) in data.iter().zip(b64["data"].as_array().unwrap()).enumerate() {
        assert_eq!((f["index"].clone(), f["object"].clone()), (json!(i), json!("embedding")));
        let v = floats(&f["embedding"]);
        assert!(cosine(&v, &want[i]) > 0.9999);
        assert_eq!(unbase64(b["embedding"].as_str().unwrap()), v);
    }
    let tokens = float["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens > 6 && float["usage"]["total_tokens"] == tokens);

    let (status, short) =
        post(&app, "/v1/embeddings", json!({ "model": "nomic", "input": "hello", "dimensions": 8 })).await;
    assert_eq!(status, StatusCode::OK, "{short}");
    let v = floats(&short["data"][0]["embedding"]);
    assert_eq!(v.len(), 8);
    assert!((norm(&v) - 1.0).abs() < 1e-5);
    for bad in [
        json!({ "model": "nomic", "input": "hello", "dimensions": 33 }),
        json!({ "model": "nomic", "input": "hello", "encoding_format": "int8" }),
        json!({ "model": "nomic", "input": "" }),
        json!({ "model": "nomic", "input": [100000] }),
    ] {
        let (status, body) = post(&app, "/v1/embeddings", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
}

#[tokio::test]
async fn an_embedding_model_shows_its_capability_and_refuses_to_generate() {
    let app = nomic_app();
    let (status, show) = post(&app, "/api/show", json!({ "model": "nomic" })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(show["capabilities"], json!(["embedding"]));
    // Loaded, it shows the encoder's own context.
    post(&app, "/api/embed", json!({ "model": "nomic", "input": "hello" })).await;
    let ps = app.clone().oneshot(Request::get("/api/ps").body(Body::empty()).unwrap()).await.unwrap();
    let ps: Value = serde_json::from_slice(&axum::body::to_bytes(ps.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(ps["models"][0]["context_length"], 512, "{ps}");
    let chat = json!({ "model": "nomic", "messages": [{ "role": "user", "content": "hi" }] });
    for (uri, body, verb) in [
        ("/api/generate", json!({ "model": "nomic", "prompt": "hi" }), "generate"),
        ("/api/chat", chat.clone(), "chat"),
        ("/v1/completions", json!({ "model": "nomic", "prompt": "hi" }), "generate"),
        ("/v1/chat/completions", chat, "chat"),
    ] {
        let (status, reply) = post(&app, uri, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        let message = reply["error"].as_str().or(reply["error"]["message"].as_str()).unwrap_or_default();
        assert_eq!(message, format!("\"nomic\" does not support {verb}"), "{uri}");
    }
}

#[tokio::test]
async fn a_generative_model_refuses_to_embed() {
    let Some(path) = kiln_testdata::model_path(kiln_testdata::SMOLLM2) else { return };
    let app = app(vec![("smol".into(), path)]);
    let (status, body) = post(&app, "/api/embed", json!({ "model": "smol", "input": "hi" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "\"smol\" does not support embeddings");
    let (status, body) = post(&app, "/v1/embeddings", json!({ "model": "smol", "input": "hi" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "\"smol\" does not support embeddings");
}
