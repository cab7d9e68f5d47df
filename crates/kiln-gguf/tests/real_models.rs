//! Reads real model files, when they are present.
//!
//! `kiln_testdata` says where they are (and fails a test whose model is missing unless model
//! tests are skipped).

use kiln_gguf::{GgmlType, GgufFile};

/// Checks that hold for any well-formed model file.
fn check_common(f: &GgufFile) {
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset() % f.alignment(), 0);
    for t in f.tensors() {
        assert_eq!(f.tensor_data(t).len() as u64, t.size, "{t}");
    }
    let tokens = f.get_array("tokenizer.ggml.tokens").unwrap().expect("has a vocabulary");
    let n_vocab = tokens.len() as u64;
    assert_eq!(tokens.as_strings().map(<[String]>::len), Some(tokens.len()));
    let scores_or_types = f.get_array("tokenizer.ggml.token_type").unwrap().expect("token types");
    assert_eq!(scores_or_types.to_i64s().map(|v| v.len() as u64), Some(n_vocab));
    let embd = f.tensor("token_embd.weight").expect("token embeddings");
    assert_eq!(embd.dims.len(), 2);
    assert_eq!(embd.dims[1], n_vocab, "one embedding row per token");
    // The last tensor's data ends within alignment padding of the end of the file.
    let end = f.tensors().iter().map(|t| f.data_offset() + t.offset + t.size).max().unwrap();
    assert!(end <= f.file_size() && f.file_size() - end < f.alignment());
}

#[test]
fn smollm2_135m_q4_1() {
    let Some(path) = kiln_testdata::model_path("SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    check_common(&f);
    assert_eq!(f.get_str("general.architecture").unwrap(), Some("llama"));
    assert_eq!(f.get_u32("llama.block_count").unwrap(), Some(30));
    assert_eq!(f.get_u32("llama.embedding_length").unwrap(), Some(576));
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), Some("gpt2"));
    // 30 blocks of 9 tensors, plus the embeddings and the output norm (output is tied).
    assert_eq!(f.tensors().len(), 30 * 9 + 2);
    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims, [576, 49152]);
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!((q.dims.as_slice(), q.ggml_type), (&[576, 576][..], GgmlType::Q4_1));
    assert!(f.get_f32("llama.attention.layer_norm_rms_epsilon").unwrap().unwrap() > 0.0);
}

#[test]
fn gemma3_270m_q4_k_m() {
    let Some(path) = kiln_testdata::model_path("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    check_common(&f);
    assert_eq!(f.get_str("general.architecture").unwrap(), Some("gemma3"));
    assert_eq!(f.get_u32("gemma3.block_count").unwrap(), Some(18));
    assert_eq!(f.get_u32("gemma3.embedding_length").unwrap(), Some(640));
    // 18 blocks of 13 tensors (with q/k norms and four layer norms), embeddings, output norm.
    assert_eq!(f.tensors().len(), 18 * 13 + 2);
    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims, [640, 262144]);
    assert_eq!(embd.ggml_type, GgmlType::Q8_0);
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), Some("llama"));
    assert_eq!(f.get_u32("gemma3.attention.sliding_window").unwrap(), Some(512));
    let scores = f.get_array("tokenizer.ggml.scores").unwrap().unwrap();
    assert_eq!(scores.as_f32s().map(<[f32]>::len), Some(262144));
}
