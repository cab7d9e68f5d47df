//! `phi3`: Phi-3 and Phi-4, with fused q/k/v and gate/up projections, LongRoPE factor tensors
//! and the sliding window (0 for none).

use kiln_gguf::Value;

use crate::arch::decoder::{norms, Dims};
use crate::arch::{output_head, Mapper};
use crate::config::HfConfig;
use crate::error::ConvertError;
use crate::plan::{ModelPlan, Source};

pub(crate) fn plan(config: &HfConfig, m: &mut Mapper) -> Result<ModelPlan, ConvertError> {
    let d = Dims::read(config)?;
    let mut plan = ModelPlan::default();
    let key = |k: &str| format!("phi3.{k}");
    let n_ctx = match config.opt_u32("n_positions")? {
        Some(n) => n,
        None => config.u32("max_position_embeddings")?,
    };
    let orig_ctx = match config.rope_f64("original_max_position_embeddings")? {
        Some(n) => n as u32,
        None => config.u32("original_max_position_embeddings")?,
    };
    let rot_pct = config.rope_f64("partial_rotary_factor")?.unwrap_or(1.0);
    let rope_dims = (rot_pct * d.hidden as f64) as u64 / d.n_head;
    let n_ff = config.u32("intermediate_size")?;
    plan.set("general.architecture", Value::String("phi3".into()));
    plan.set(key("context_length"), Value::U32(n_ctx));
    plan.set(key("rope.scaling.original_context_length"), Value::U32(orig_ctx));
    plan.set(key("embedding_length"), Value::U32(d.hidden as u32));
    plan.set(key("feed_forward_length"), Value::U32(n_ff));
    plan.set(key("block_count"), Value::U32(d.n_layer));
    plan.set(key("attention.head_count"), Value::U32(d.n_head as u32));
    plan.set(key("attention.head_count_kv"), Value::U32(d.n_head_kv as u32));
    plan.set(key("attention.layer_norm_rms_epsilon"), Value::F32(config.f64("rms_norm_eps")? as f32));
    plan.set(key("rope.dimension_count"), Value::U32(rope_dims as u32));
    let theta = match config.rope_f64("rope_theta")? {
        Some(t) => t,
        None => config.f64("rope_theta")?,
    };
    plan.set(key("rope.freq_base"), Value::F32(theta as f32));
    plan.set(key("attention.sliding_window"), Value::U32(config.opt_u32("sliding_window")?.unwrap_or(0)));
    long_rope(&mut plan, m, config, n_ctx, orig_ctx, rope_dims)?;

    m.tensor(&mut plan, "model.embed_tokens.weight", "token_embd.weight", &[d.vocab, d.hidden])?;
    m.tensor(&mut plan, "model.norm.weight", "output_norm.weight", &[d.hidden])?;
    output_head(&mut plan, m, config, &[d.vocab, d.hidden])?;
    let qkv_rows = (d.n_head + 2 * d.n_head_kv) * d.head_dim;
    for b in 0..d.n_layer {
        let hf = |s: &str| format!("model.layers.{b}.{s}.weight");
        let gg = |s: &str| format!("blk.{b}.{s}.weight");
        m.tensor(&mut plan, &hf("self_attn.qkv_proj"), &gg("attn_qkv"), &[qkv_rows, d.hidden])?;
        m.tensor(&mut plan, &hf("self_attn.o_proj"), &gg("attn_output"), &[d.hidden, d.n_head * d.head_dim])?;
        m.tensor(&mut plan, &hf("mlp.gate_up_proj"), &gg("ffn_up"), &[2 * u64::from(n_ff), d.hidden])?;
        m.tensor(&mut plan, &hf("mlp.down_proj"), &gg("ffn_down"), &[d.hidden, n_ff.into()])?;
        norms(&mut plan, m, &d, b)?;
    }
    Ok(plan)
}

/// LongRoPE: both factor sets as tensors and the attention factor for contexts beyond the
/// original one.
fn long_rope(
    plan: &mut ModelPlan,
    m: &mut Mapper,
    config: &HfConfig,
    n_ctx: u32,
    orig_ctx: u32,
    rope_dims: u64,
) -> Result<(), ConvertError> {
    let Some(long) = config.rope_list("long_factor")?.filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let short = config
        .rope_list("short_factor")?
        .ok_or_else(|| ConvertError::MissingConfig { key: "rope_scaling.short_factor".into() })?;
    let scale = f64::from(n_ctx) / f64::from(orig_ctx);
    let attn_factor = match config.rope_type().map(str::to_ascii_lowercase).as_deref() {
        Some("su" | "longrope") if scale > 1.0 => (1.0 + scale.ln() / f64::from(orig_ctx).ln()).sqrt(),
        Some("yarn") if scale > 1.0 => 0.1 * scale.ln() + 1.0,
        Some("su" | "longrope" | "yarn") => 1.0,
        other => {
            return Err(ConvertError::bad_config(
                "rope_scaling.rope_type",
                format!("{other:?} has no LongRoPE factors"),
            ))
        }
    };
    plan.set("phi3.rope.scaling.attn_factor", Value::F32(attn_factor as f32));
    for (key, factors) in [("long_factor", &long), ("short_factor", &short)] {
        if factors.len() as u64 * 2 != rope_dims {
            return Err(ConvertError::bad_config(
                &format!("rope_scaling.{key}"),
                format!("has {} factors, expected {}", factors.len(), rope_dims / 2),
            ));
        }
    }
    let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
    m.add(plan, "rope_factors_long.weight", Source::Values(to_f32(&long)))?;
    m.add(plan, "rope_factors_short.weight", Source::Values(to_f32(&short)))
}
