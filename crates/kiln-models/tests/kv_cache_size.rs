//! What the KV cache costs per token: per-head keys and values for ordinary attention, one
//! compressed latent and rotary key for DeepSeek's latent attention.

use kiln_models::Model;
use std::path::PathBuf;

fn fixture(arch: &str) -> Model {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf").join(arch).join("model.gguf");
    Model::load(&path, &mut |_, _| {}).unwrap()
}

const F16: usize = 2;

/// Qwen 2 fixture: 2 layers × (K and V) × 2 KV heads × 16 dims, f16.
#[test]
fn keys_and_values_per_kv_head() {
    let model = fixture("qwen2");
    let c = model.config();
    let kv = model.new_kv_cache(3, 16);
    assert_eq!(kv.bytes_per_token(), c.n_layers * 2 * c.n_kv_heads * c.head_dim * F16);
    assert_eq!(kv.bytes_per_token(), 256);
    assert_eq!(kv.bytes(), 256 * 3 * 16);
}

/// DeepSeek V3 fixture: per layer the 16-value latent and the 8-dim rotary key, nothing else.
/// Decompressed, the same attention would cache for each of 4 heads a key of 8 + 8 and a value
/// of 8: 4 × 24 values per layer instead of 24 (for DeepSeek V3 itself, 128 heads of 192 + 128
/// against 512 + 64: about 71 times less).
#[test]
fn latent_attention_caches_only_the_latent_and_rotary_key() {
    let model = fixture("deepseek2");
    let c = model.config();
    let mla = c.mla.expect("deepseek2 uses latent attention");
    let kv = model.new_kv_cache(3, 16);
    assert_eq!(kv.bytes_per_token(), c.n_layers * (mla.kv_lora_rank + c.rope_dims) * F16);
    assert_eq!(kv.bytes_per_token(), 96);
    assert!(kv.layers.iter().all(|l| l.v.is_empty()));
    let expanded = c.n_layers * c.n_heads * (mla.qk_nope_head_dim + c.rope_dims + mla.v_head_dim) * F16;
    assert_eq!(expanded, 384);
}
