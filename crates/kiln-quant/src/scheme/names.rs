//! What a tensor's name (and shape) tells the quantization schemes: whether llama.cpp quantizes
//! it at all, its broad role, and its block. These follow `llama-quant.cpp`
//! (`tensor_allows_quantization`, `tensor_get_category`).

/// The roles whose types the schemes adjust, matched by name as llama.cpp matches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Output,
    TokenEmbd,
    /// `attn_v`, and the tensors that hold it with others (`attn_qkv`, `attn_kv_b`): the
    /// attention values are the most sensitive to quantization.
    AttnV,
    AttnK,
    AttnOutput,
    FfnDown,
    Other,
}

/// llama.cpp's `tensor_get_category`. The order matters: `attn_qkv` is a value tensor, and
/// `ffn_up`/`ffn_gate`/`ffn_down` match their expert and shared-expert variants too.
pub fn category(name: &str) -> Category {
    if name == "output.weight" {
        return Category::Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return Category::TokenEmbd;
    }
    let rules = [
        ("attn_qkv.weight", Category::AttnV),
        ("attn_kv_b.weight", Category::AttnV),
        ("attn_v.weight", Category::AttnV),
        ("attn_k.weight", Category::AttnK),
        ("attn_q.weight", Category::Other),
        ("attn_output.weight", Category::AttnOutput),
        ("ffn_up", Category::Other),
        ("ffn_gate", Category::Other),
        ("ffn_down", Category::FfnDown),
    ];
    rules.iter().find(|(pat, _)| name.contains(pat)).map_or(Category::Other, |&(_, c)| c)
}

/// Substrings of the tensors llama.cpp never quantizes whatever the architecture: norms,
/// MoE routers and routing tables, small or position-like tables, convolutions, RWKV's mixing
/// parameters, and vision/audio encoder parts.
const NEVER_QUANTIZED: &[&str] = &[
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
];

/// The same for `glm5-next` only.
const NEVER_QUANTIZED_GLM5_NEXT: &[&str] = &[
    "hc_",
    "indexer.attn_q_b",
    "indexer.attn_k",
    "indexer.proj",
    "indexer_compressor_gate",
    "indexer_compressor_ape",
    "ssm_f_a.weight",
    "ssm_f_b.weight",
    "ssm_g_a.weight",
    "ssm_g_b.weight",
    "ssm_beta.weight",
    "attn_kv_a_mqa.weight",
    "attn_k_b.weight",
    "attn_v_b.weight",
];

/// ggml's `ggml_n_dims`: trailing dimensions of 1 do not count (a `[64, 1]` tensor is 1-D).
fn n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// llama.cpp's `tensor_allows_quantization`: only weight matrices (and expert stacks) that
/// are not on the lists above.
pub fn is_quantizable(name: &str, dims: &[u64], arch: &str) -> bool {
    n_dims(dims) >= 2
        && name.ends_with("weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
        && !NEVER_QUANTIZED.iter().any(|p| name.contains(p))
        && !(arch == "glm5-next" && NEVER_QUANTIZED_GLM5_NEXT.iter().any(|p| name.contains(p)))
}

/// The block a tensor belongs to (`blk.N.`); 0 for tensors outside the blocks.
pub fn layer(name: &str) -> usize {
    name.strip_prefix("blk.").and_then(|rest| rest.split('.').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_llama_cpps_matching_order() {
        assert_eq!(category("output.weight"), Category::Output);
        assert_eq!(category("per_layer_token_embd.weight"), Category::TokenEmbd);
        assert_eq!(category("blk.0.attn_qkv.weight"), Category::AttnV);
        assert_eq!(category("blk.0.attn_kv_b.weight"), Category::AttnV);
        assert_eq!(category("blk.0.attn_k_b.weight"), Category::Other);
        assert_eq!(category("blk.0.attn_k.weight"), Category::AttnK);
        assert_eq!(category("blk.3.ffn_down_shexp.weight"), Category::FfnDown);
        assert_eq!(category("blk.3.ffn_up_exps.weight"), Category::Other);
        assert_eq!(category("blk.3.attn_output.weight"), Category::AttnOutput);
    }

    #[test]
    fn only_weight_matrices_off_the_lists_are_quantized() {
        assert!(is_quantizable("blk.0.ffn_up.weight", &[64, 128], "llama"));
        assert!(is_quantizable("blk.0.ffn_up_exps.weight", &[64, 128, 4], "llama"));
        assert!(!is_quantizable("blk.0.attn_norm.weight", &[64], "llama"));
        assert!(!is_quantizable("blk.0.ffn_up.weight", &[64, 1, 1], "llama"));
        assert!(!is_quantizable("blk.0.attn_q.bias", &[64, 64], "llama"));
        assert!(!is_quantizable("blk.0.attn_q_norm.weight", &[64, 64], "llama"));
        assert!(!is_quantizable("blk.0.ffn_gate_inp.weight", &[64, 8], "llama"));
        assert!(!is_quantizable("position_embd.weight", &[64, 512], "gpt2"));
        assert!(!is_quantizable("blk.0.ssm_conv1d.weight", &[4, 64], "mamba"));
        assert!(is_quantizable("blk.0.attn_k_b.weight", &[64, 64], "deepseek2"));
        assert!(!is_quantizable("blk.0.attn_k_b.weight", &[64, 64], "glm5-next"));
    }

    #[test]
    fn layers_come_from_the_name() {
        assert_eq!(layer("blk.17.ffn_down.weight"), 17);
        assert_eq!(layer("token_embd.weight"), 0);
    }
}
