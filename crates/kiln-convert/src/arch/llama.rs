//! `llama`: Llama, Mistral and Mixtral (experts stacked), with q/k rows interleaved for
//! llama.cpp's rope and Llama 3's rope scaling stored as the `rope_freqs.weight` tensor.
//!
//! One key more than llama.cpp's converter writes: Mistral's `sliding_window` as
//! `llama.attention.sliding_window` (llama.cpp drops it, and runs Mistral 7B v0.1 with full
//! attention past its 4096-token window); Kiln's `llama` honours the key.

use kiln_gguf::Value;

use crate::arch::decoder::{attention, embeddings_and_head, gated_ffn, stacked_experts, Dims, RopeLayout};
use crate::arch::{base_metadata, Mapper};
use crate::config::HfConfig;
use crate::error::ConvertError;
use crate::plan::{ModelPlan, Source};

pub(crate) fn plan(config: &HfConfig, m: &mut Mapper) -> Result<ModelPlan, ConvertError> {
    let d = Dims::read(config)?;
    let mut plan = ModelPlan::default();
    base_metadata(&mut plan, "llama", config)?;
    plan.set("llama.vocab_size", Value::U32(d.vocab as u32));
    plan.set("llama.rope.dimension_count", Value::U32(d.head_dim as u32));
    if let Some(window) = config.opt_u32("sliding_window")?.filter(|&w| w > 0) {
        plan.set("llama.attention.sliding_window", Value::U32(window));
    }
    if config.rope_type().is_some_and(|t| t.eq_ignore_ascii_case("llama3")) {
        m.add(&mut plan, "rope_freqs.weight", Source::Values(llama3_rope_factors(config, d.head_dim)?))?;
    }
    embeddings_and_head(&mut plan, m, config, &d)?;
    let n_expert = config.opt_u32("num_local_experts")?;
    for b in 0..d.n_layer {
        attention(&mut plan, m, &d, b, RopeLayout::Interleaved)?;
        match n_expert {
            Some(n) => {
                let moe = format!("model.layers.{b}.block_sparse_moe");
                m.tensor(
                    &mut plan,
                    &format!("{moe}.gate.weight"),
                    &format!("blk.{b}.ffn_gate_inp.weight"),
                    &[n.into(), d.hidden],
                )?;
                stacked_experts(&mut plan, m, b, n, |x, part| {
                    let w = match part {
                        "gate" => "w1",
                        "down" => "w2",
                        _ => "w3",
                    };
                    format!("{moe}.experts.{x}.{w}.weight")
                })?;
            }
            None => gated_ffn(&mut plan, m, &d, b, "mlp", "", config.u32("intermediate_size")?.into())?,
        }
    }
    Ok(plan)
}

/// Llama 3's per-frequency divisors: 1 for short wavelengths, `factor` for long ones, a smooth
/// blend between. Computed in f32 step by step as llama.cpp's converter does with torch
/// (whose `a / tensor` is `reciprocal(tensor) * a`), so the tensor is bit-identical.
fn llama3_rope_factors(config: &HfConfig, head_dim: u64) -> Result<Vec<f32>, ConvertError> {
    let get = |key: &str, default: f64| config.rope_f64(key).map(|v| v.unwrap_or(default));
    let base = match config.rope_f64("rope_theta")? {
        Some(t) => t,
        None => config.opt_f64("rope_theta")?.unwrap_or(10000.0),
    } as f32;
    let factor = get("factor", 8.0)? as f32;
    let low_freq_factor = get("low_freq_factor", 1.0)?;
    let high_freq_factor = get("high_freq_factor", 4.0)?;
    let old_context_len = get("original_max_position_embeddings", 8192.0)?;
    let low_freq_wavelen = (old_context_len / low_freq_factor) as f32;
    let high_freq_wavelen = (old_context_len / high_freq_factor) as f32;
    let dim = head_dim as f32;
    let tau = (2.0 * std::f64::consts::PI) as f32;
    let factors = (0..head_dim)
        .step_by(2)
        .map(|i| {
            let freq = 1.0 / base.powf(i as f32 / dim);
            let wavelen = tau * (1.0 / freq);
            if wavelen < high_freq_wavelen {
                1.0
            } else if wavelen > low_freq_wavelen {
                factor
            } else {
                let smooth = ((old_context_len as f32) * (1.0 / wavelen) - low_freq_factor as f32)
                    / (high_freq_factor - low_freq_factor) as f32;
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect();
    Ok(factors)
}
