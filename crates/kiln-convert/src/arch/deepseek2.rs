//! `deepseek2`: DeepSeek V2 and V3. Multi-head latent attention stored as llama.cpp's
//! absorbed form (`kv_b_proj` split into per-head `attn_k_b`, transposed, and `attn_v_b`),
//! leading dense layers, then routed experts (stacked) with shared experts.

use kiln_gguf::Value;

use crate::arch::decoder::{embeddings_and_head, gated_ffn, norms, stacked_experts, Dims};
use crate::arch::{base_metadata, set_u32, Mapper};
use crate::config::HfConfig;
use crate::error::ConvertError;
use crate::plan::{KvPart, ModelPlan, Source};

pub(crate) fn plan(config: &HfConfig, m: &mut Mapper) -> Result<ModelPlan, ConvertError> {
    let d = Dims::read(config)?;
    let mut plan = ModelPlan::default();
    let key = |k: &str| format!("deepseek2.{k}");
    base_metadata(&mut plan, "deepseek2", config)?;
    // MLA runs as multi-query attention over the latent: one KV head.
    plan.set(key("attention.head_count_kv"), Value::U32(1));
    if config.opt_f64("rms_norm_eps")?.is_none() {
        plan.set(key("attention.layer_norm_rms_epsilon"), Value::F32(1e-6));
    }
    let n_routed = config.opt_u32("n_routed_experts")?;
    let n_dense = match config.opt_u32("first_k_dense_replace")? {
        Some(n) => n,
        None if n_routed.is_none() => d.n_layer,
        None => 0,
    };
    plan.set(key("leading_dense_block_count"), Value::U32(n_dense));
    plan.set(key("vocab_size"), Value::U32(d.vocab as u32));
    let q_lora_rank = config.opt_u32("q_lora_rank")?;
    set_u32(&mut plan, key("attention.q_lora_rank"), q_lora_rank);
    let kv_lora_rank = config.opt_u32("kv_lora_rank")?.unwrap_or(512);
    let (nope, rope) = (config.u32("qk_nope_head_dim")?, config.u32("qk_rope_head_dim")?);
    let v_head_dim = config.u32("v_head_dim")?;
    plan.set(key("attention.kv_lora_rank"), Value::U32(kv_lora_rank));
    plan.set(key("attention.key_length"), Value::U32(kv_lora_rank + rope));
    plan.set(key("attention.value_length"), Value::U32(kv_lora_rank));
    plan.set(key("attention.key_length_mla"), Value::U32(nope + rope));
    plan.set(key("attention.value_length_mla"), Value::U32(v_head_dim));
    let expert_ff = match config.opt_u32("moe_intermediate_size")? {
        Some(n) => n,
        None => config.u32("intermediate_size")?,
    };
    plan.set(key("expert_feed_forward_length"), Value::U32(expert_ff));
    let n_shared = config.opt_u32("n_shared_experts")?.unwrap_or(0);
    plan.set(key("expert_shared_count"), Value::U32(n_shared));
    if let Some(scale) = config.opt_f64("routed_scaling_factor")? {
        plan.set(key("expert_weights_scale"), Value::F32(scale as f32));
    }
    if config.opt_bool("norm_topk_prob") == Some(true) {
        plan.set(key("expert_weights_norm"), Value::Bool(true));
    }
    plan.set(key("rope.dimension_count"), Value::U32(rope));
    if let Some(mscale_all_dim) = config.rope_f64("mscale_all_dim")? {
        // llama.cpp's deepseek2 reads this key scaled by 0.1 (unlike other architectures).
        plan.set(key("rope.scaling.yarn_log_multiplier"), Value::F32((0.1 * mscale_all_dim) as f32));
    }

    // Multi-token-prediction layers past the last block are not run.
    let n_layer = d.n_layer;
    m.ignore(move |name| {
        let layer = name.strip_prefix("model.layers.").and_then(|r| r.split('.').next()?.parse::<u32>().ok());
        layer.is_some_and(|l| l >= n_layer)
    });
    if config.opt_bool("tie_word_embeddings") == Some(true) {
        m.ignore(|name| name == "lm_head.weight");
    }
    embeddings_and_head(&mut plan, m, config, &d)?;
    let n_head_kv = config.opt_u32("num_key_value_heads")?.unwrap_or(d.n_head as u32);
    for b in 0..d.n_layer {
        let hf = |s: &str| format!("model.layers.{b}.{s}");
        let gg = |s: &str| format!("blk.{b}.{s}");
        if q_lora_rank.is_some() {
            m.copy(&mut plan, &hf("self_attn.q_a_proj.weight"), &gg("attn_q_a.weight"))?;
            m.copy(&mut plan, &hf("self_attn.q_a_layernorm.weight"), &gg("attn_q_a_norm.weight"))?;
            m.copy(&mut plan, &hf("self_attn.q_b_proj.weight"), &gg("attn_q_b.weight"))?;
        } else {
            m.copy(&mut plan, &hf("self_attn.q_proj.weight"), &gg("attn_q.weight"))?;
        }
        m.copy(&mut plan, &hf("self_attn.kv_a_proj_with_mqa.weight"), &gg("attn_kv_a_mqa.weight"))?;
        m.copy(&mut plan, &hf("self_attn.kv_a_layernorm.weight"), &gg("attn_kv_a_norm.weight"))?;
        for (part, out) in [(KvPart::K, "attn_k_b.weight"), (KvPart::V, "attn_v_b.weight")] {
            let source = Source::KvB {
                name: hf("self_attn.kv_b_proj.weight"),
                n_head: n_head_kv.into(),
                nope: nope.into(),
                v: v_head_dim.into(),
                part,
            };
            m.add(&mut plan, gg(out), source)?;
        }
        m.copy(&mut plan, &hf("self_attn.o_proj.weight"), &gg("attn_output.weight"))?;
        norms(&mut plan, m, &d, b)?;
        match n_routed {
            Some(n_expert) if b >= n_dense => {
                m.tensor(&mut plan, &hf("mlp.gate.weight"), &gg("ffn_gate_inp.weight"), &[n_expert.into(), d.hidden])?;
                m.copy_if_present(&mut plan, &hf("mlp.gate.e_score_correction_bias"), &gg("exp_probs_b.bias"))?;
                stacked_experts(&mut plan, m, b, n_expert, |x, part| {
                    hf(&format!("mlp.experts.{x}.{part}_proj.weight"))
                })?;
                if n_shared > 0 {
                    gated_ffn(&mut plan, m, &d, b, "mlp.shared_experts", "_shexp", u64::from(expert_ff * n_shared))?;
                }
            }
            _ => gated_ffn(&mut plan, m, &d, b, "mlp", "", config.u32("intermediate_size")?.into())?,
        }
    }
    Ok(plan)
}
