//! Files that parse as GGUF but are not models Kiln can run get errors that say why.

use kiln_gguf::GgufFile;
use kiln_models::{Model, ModelError};
use std::sync::Arc;

enum Meta {
    Str(&'static str),
    U32(u32),
    F32(f32),
}

/// A minimal GGUF v3 writer: metadata plus F32 tensors (shape only matters here).
fn gguf(meta: &[(&str, Meta)], tensors: &[(&str, &[u64])]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((meta.len() as u64).to_le_bytes());
    for (key, value) in meta {
        string(&mut out, key);
        match value {
            Meta::Str(s) => {
                out.extend(8u32.to_le_bytes());
                string(&mut out, s);
            }
            Meta::U32(v) => {
                out.extend(4u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::F32(v) => {
                out.extend(6u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
        }
    }
    let mut offset = 0u64;
    for (name, dims) in tensors {
        string(&mut out, name);
        out.extend((dims.len() as u32).to_le_bytes());
        for d in *dims {
            out.extend(d.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes()); // F32
        out.extend(offset.to_le_bytes());
        offset += (dims.iter().product::<u64>() * 4).div_ceil(32) * 32;
    }
    while !out.len().is_multiple_of(32) {
        out.push(0);
    }
    out.resize(out.len() + offset as usize, 0);
    out
}

fn load(bytes: Vec<u8>) -> Result<Model, ModelError> {
    Model::from_file(Arc::new(GgufFile::from_bytes(bytes).expect("valid GGUF")))
}

fn llama_meta() -> Vec<(&'static str, Meta)> {
    vec![
        ("general.architecture", Meta::Str("llama")),
        ("llama.block_count", Meta::U32(1)),
        ("llama.embedding_length", Meta::U32(8)),
        ("llama.feed_forward_length", Meta::U32(16)),
        ("llama.attention.head_count", Meta::U32(2)),
        ("llama.attention.layer_norm_rms_epsilon", Meta::F32(1e-5)),
        ("llama.vocab_size", Meta::U32(32)),
    ]
}

#[test]
fn unsupported_architecture_is_named() {
    let err = load(gguf(&[("general.architecture", Meta::Str("mamba"))], &[])).err().unwrap();
    assert!(err.to_string().contains("architecture 'mamba' is not supported"), "{err}");
}

#[test]
fn missing_metadata_is_named() {
    let mut meta = llama_meta();
    meta.retain(|(k, _)| *k != "llama.embedding_length");
    let err = load(gguf(&meta, &[])).err().unwrap();
    assert!(err.to_string().contains("'llama.embedding_length' is missing"), "{err}");
}

#[test]
fn inconsistent_heads_are_refused() {
    let mut meta = llama_meta();
    meta.push(("llama.attention.head_count_kv", Meta::U32(3)));
    let err = load(gguf(&meta, &[])).err().unwrap();
    assert!(err.to_string().contains("do not divide"), "{err}");
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let err = load(gguf(&llama_meta(), &[])).err().unwrap();
    assert!(err.to_string().contains("tensor 'token_embd.weight' is missing"), "{err}");
    let err = load(gguf(&llama_meta(), &[("token_embd.weight", &[8, 31])])).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("token_embd.weight") && msg.contains("[8, 31]") && msg.contains("[8, 32]"), "{msg}");
    let err = load(gguf(&llama_meta(), &[("token_embd.weight", &[8, 32])])).err().unwrap();
    assert!(err.to_string().contains("'blk.0.attn_norm.weight' is missing"), "{err}");
}

fn deepseek2_meta() -> Vec<(&'static str, Meta)> {
    vec![
        ("general.architecture", Meta::Str("deepseek2")),
        ("deepseek2.block_count", Meta::U32(1)),
        ("deepseek2.embedding_length", Meta::U32(8)),
        ("deepseek2.feed_forward_length", Meta::U32(16)),
        ("deepseek2.attention.head_count", Meta::U32(2)),
        ("deepseek2.attention.head_count_kv", Meta::U32(1)),
        ("deepseek2.attention.key_length", Meta::U32(6)),
        ("deepseek2.attention.value_length", Meta::U32(4)),
        ("deepseek2.attention.kv_lora_rank", Meta::U32(4)),
        ("deepseek2.attention.key_length_mla", Meta::U32(4)),
        ("deepseek2.attention.value_length_mla", Meta::U32(2)),
        ("deepseek2.rope.dimension_count", Meta::U32(2)),
        ("deepseek2.vocab_size", Meta::U32(32)),
    ]
}

/// Conversions from before the split `attn_k_b`/`attn_v_b` tensors lack the MLA head widths; a
/// key width that is not latent + rotary dims is refused before any tensor is looked at.
#[test]
fn deepseek2_without_latent_shape_is_refused() {
    let mut meta = deepseek2_meta();
    meta.retain(|(k, _)| *k != "deepseek2.attention.key_length_mla");
    let err = load(gguf(&meta, &[])).err().unwrap();
    assert!(err.to_string().contains("'deepseek2.attention.key_length_mla' is missing"), "{err}");
    let mut meta = deepseek2_meta();
    meta.retain(|(k, _)| *k != "deepseek2.attention.key_length");
    meta.push(("deepseek2.attention.key_length", Meta::U32(8)));
    let err = load(gguf(&meta, &[])).err().unwrap();
    assert!(err.to_string().contains("does not fit a latent of 4 and 2 rotary dims"), "{err}");
    let err = load(gguf(&deepseek2_meta(), &[])).err().unwrap();
    assert!(err.to_string().contains("tensor 'token_embd.weight' is missing"), "{err}");
}

#[test]
fn expert_groups_must_divide_the_experts() {
    let mut meta = deepseek2_meta();
    meta.extend([
        ("deepseek2.expert_count", Meta::U32(6)),
        ("deepseek2.expert_used_count", Meta::U32(2)),
        ("deepseek2.expert_group_count", Meta::U32(4)),
    ]);
    let err = load(gguf(&meta, &[])).err().unwrap();
    assert!(err.to_string().contains("6 experts in 4 groups"), "{err}");
}

fn bert_meta(pooling: u32) -> Vec<(&'static str, Meta)> {
    vec![
        ("general.architecture", Meta::Str("bert")),
        ("bert.block_count", Meta::U32(1)),
        ("bert.context_length", Meta::U32(16)),
        ("bert.embedding_length", Meta::U32(8)),
        ("bert.feed_forward_length", Meta::U32(16)),
        ("bert.attention.head_count", Meta::U32(2)),
        ("bert.attention.layer_norm_epsilon", Meta::F32(1e-12)),
        ("bert.pooling_type", Meta::U32(pooling)),
    ]
}

fn load_encoder(bytes: Vec<u8>) -> Result<kiln_models::Encoder, ModelError> {
    kiln_models::Encoder::from_file(Arc::new(GgufFile::from_bytes(bytes).expect("valid GGUF")))
}

#[test]
fn encoders_name_unsupported_pooling_and_missing_tensors() {
    let file = GgufFile::from_bytes(gguf(&bert_meta(1), &[])).unwrap();
    assert!(kiln_models::is_encoder(&file));
    assert!(!kiln_models::is_encoder(&GgufFile::from_bytes(gguf(&llama_meta(), &[])).unwrap()));
    let err = load_encoder(gguf(&bert_meta(0), &[])).err().unwrap();
    assert!(err.to_string().contains("'bert.pooling_type': no pooling"), "{err}");
    let err = load_encoder(gguf(&bert_meta(4), &[])).err().unwrap();
    assert!(err.to_string().contains("rank pooling"), "{err}");
    let err = load_encoder(gguf(&bert_meta(1), &[("token_embd.weight", &[8, 32])])).err().unwrap();
    assert!(err.to_string().contains("tensor 'position_embd.weight' is missing"), "{err}");
    let tensors: &[(&str, &[u64])] = &[("token_embd.weight", &[8, 32]), ("position_embd.weight", &[8, 16])];
    let err = load_encoder(gguf(&bert_meta(1), tensors)).err().unwrap();
    assert!(err.to_string().contains("tensor 'blk.0.attn_q.weight' is missing"), "{err}");
}
