//! Embeddings against references Kiln did not compute: sentence-transformers for
//! all-MiniLM-L6-v2 (`tests/fixtures/minilm-embeddings.json`, made by
//! `scripts/gen-embedding-fixtures.py`) and llama.cpp's `llama-embedding` for a tiny random
//! Nomic BERT (`tests/fixtures/nomic-bert-tiny.*`, made by `scripts/gen-nomic-bert-fixture.py`).

use kiln_engine::{EmbedError, EmbedInput, EmbedOptions, Embedder};
use kiln_gguf::GgufFile;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn fixture(name: &str) -> Value {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn embedder(path: &Path) -> Embedder {
    let file = Arc::new(GgufFile::open(path).expect("model file parses"));
    Embedder::from_file(file, 2).expect("embedding model loads")
}

fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .expect("vectors")
        .iter()
        .map(|row| row.as_array().expect("vector").iter().map(|x| x.as_f64().expect("number") as f32).collect())
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn texts(v: &Value) -> Vec<EmbedInput> {
    v.as_array().expect("texts").iter().map(|s| EmbedInput::Text(s.as_str().expect("text").to_string())).collect()
}

/// Kiln's all-MiniLM-L6-v2 (the F32 GGUF) against sentence-transformers on 56 sentences, all
/// embedded in one batch: cosine ≥ 0.999 for each (observed minimum 0.999998), and unit length.
#[test]
fn minilm_matches_sentence_transformers() {
    let Some(path) = kiln_testdata::minilm_gguf() else { return };
    let e = embedder(&path);
    let fx = fixture("minilm-embeddings.json");
    let want = vectors(&fx["embeddings"]);
    let got = e.embed(&texts(&fx["sentences"]), &EmbedOptions::default()).expect("embeds");
    assert_eq!(got.vectors.len(), want.len());
    let mut worst = (1.0f64, 0);
    for (i, (g, w)) in got.vectors.iter().zip(&want).enumerate() {
        assert_eq!(g.len(), 384);
        let norm: f64 = g.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "input {i} has norm {norm}");
        let c = cosine(g, w);
        if c < worst.0 {
            worst = (c, i);
        }
    }
    eprintln!("lowest cosine {:.6} (sentence {})", worst.0, worst.1);
    assert!(worst.0 >= 0.999, "sentence {} has cosine {}", worst.1, worst.0);
}

/// A batch gives each input the vector it gets alone.
#[test]
fn minilm_batch_equals_each_alone() {
    let Some(path) = kiln_testdata::minilm_gguf() else { return };
    let e = embedder(&path);
    let inputs: Vec<EmbedInput> = ["short", "a somewhat longer sentence about kilns and pottery", "x y z"]
        .map(|s| EmbedInput::Text(s.into()))
        .into();
    let batch = e.embed(&inputs, &EmbedOptions::default()).expect("embeds");
    for (i, input) in inputs.iter().enumerate() {
        let alone = e.embed(std::slice::from_ref(input), &EmbedOptions::default()).expect("embeds");
        assert!(cosine(&alone.vectors[0], &batch.vectors[i]) > 0.99999, "input {i}");
    }
}

/// Truncation cuts to the context and keeps [SEP]; without it, a long input is refused.
#[test]
fn minilm_truncates_or_refuses_long_input() {
    let Some(path) = kiln_testdata::minilm_gguf() else { return };
    let e = embedder(&path);
    let long = vec![EmbedInput::Text("word ".repeat(40))];
    let cut = EmbedOptions { num_ctx: Some(16), ..EmbedOptions::default() };
    let got = e.embed(&long, &cut).expect("truncated input embeds");
    assert_eq!(got.prompt_tokens, 16);
    let first16 = vec![EmbedInput::Text("word ".repeat(14))];
    let same = e.embed(&first16, &EmbedOptions::default()).expect("embeds");
    assert!(cosine(&got.vectors[0], &same.vectors[0]) > 0.99999);
    let refuse = EmbedOptions { truncate: false, ..cut };
    match e.embed(&long, &refuse) {
        Err(EmbedError::InputTooLong { index: 0, n_tokens: 42, limit: 16 }) => {}
        other => panic!("expected InputTooLong, got {other:?}"),
    }
}

/// Token-id input gets [CLS]/[SEP] like text; `dimensions` keeps a renormalised prefix.
#[test]
fn minilm_token_input_and_dimensions() {
    let Some(path) = kiln_testdata::minilm_gguf() else { return };
    let e = embedder(&path);
    let text = "hello world";
    let ids = e.tokenizer().encode(text, false, false);
    let opts = EmbedOptions::default();
    let a = e.embed(&[EmbedInput::Text(text.into())], &opts).expect("embeds");
    let b = e.embed(&[EmbedInput::Tokens(ids)], &opts).expect("embeds");
    assert_eq!(a, b);
    let short = e.embed(&[EmbedInput::Text(text.into())], &EmbedOptions { dimensions: Some(64), ..opts }).unwrap();
    assert_eq!(short.vectors[0].len(), 64);
    assert!(cosine(&short.vectors[0], &a.vectors[0][..64]) > 0.99999);
    let outside = e.embed(&[EmbedInput::Tokens(vec![30522])], &opts);
    assert!(matches!(outside, Err(EmbedError::BadToken { index: 0, id: 30522, n_vocab: 30522 })), "{outside:?}");
    let too_many = EmbedOptions { dimensions: Some(385), ..opts };
    assert!(matches!(e.embed(&[EmbedInput::Text(text.into())], &too_many), Err(EmbedError::BadDimensions { .. })));
}

/// The tiny random Nomic BERT (fused QKV, NeoX RoPE, SwiGLU, no biases) against llama.cpp's
/// `llama-embedding` on the same file: cosine ≥ 0.9999 and largest difference < 1e-4 for each
/// sentence (observed: cosine 1.000000, largest difference 7e-7).
#[test]
fn nomic_bert_matches_llama_cpp() {
    let e = embedder(&fixture_path("nomic-bert-tiny.gguf"));
    assert_eq!(e.encoder().config().arch, kiln_models::EncoderArch::NomicBert);
    let fx = fixture("nomic-bert-tiny.json");
    let want = vectors(&fx["embeddings"]);
    let got = e.embed(&texts(&fx["sentences"]), &EmbedOptions::default()).expect("embeds");
    let mut worst_cos = 1.0f64;
    let mut worst_diff = 0f32;
    for (g, w) in got.vectors.iter().zip(&want) {
        assert_eq!(g.len(), w.len());
        worst_cos = worst_cos.min(cosine(g, w));
        worst_diff = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(worst_diff, f32::max);
    }
    eprintln!("lowest cosine {worst_cos:.6}, largest difference {worst_diff:e}");
    assert!(worst_cos >= 0.9999 && worst_diff < 1e-4, "cosine {worst_cos}, difference {worst_diff}");
}
