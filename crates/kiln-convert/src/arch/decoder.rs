//! The pieces Llama-style decoders share: embeddings, attention, norms, dense and expert FFNs,
//! under their Hugging Face and GGUF names.

use crate::arch::{output_head, Mapper};
use crate::config::HfConfig;
use crate::error::ConvertError;
use crate::plan::{ModelPlan, Source};

/// The sizes the shared pieces check shapes against.
pub(crate) struct Dims {
    pub n_layer: u32,
    pub hidden: u64,
    pub vocab: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub head_dim: u64,
}

impl Dims {
    pub fn read(config: &HfConfig) -> Result<Dims, ConvertError> {
        let n_head = config.u32("num_attention_heads")?;
        Ok(Dims {
            n_layer: config.u32("num_hidden_layers")?,
            hidden: config.u32("hidden_size")?.into(),
            vocab: config.u32("vocab_size")?.into(),
            n_head: n_head.into(),
            n_head_kv: config.opt_u32("num_key_value_heads")?.unwrap_or(n_head).into(),
            head_dim: config.head_dim()?.into(),
        })
    }
}

/// Token embeddings, final norm and output head.
pub(crate) fn embeddings_and_head(
    plan: &mut ModelPlan,
    m: &mut Mapper,
    config: &HfConfig,
    d: &Dims,
) -> Result<(), ConvertError> {
    m.tensor(plan, "model.embed_tokens.weight", "token_embd.weight", &[d.vocab, d.hidden])?;
    m.tensor(plan, "model.norm.weight", "output_norm.weight", &[d.hidden])?;
    output_head(plan, m, config, &[d.vocab, d.hidden])
}

/// How the q and k projections are laid out for rope in the GGUF.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RopeLayout {
    /// As Hugging Face stores them (rotate-half; llama.cpp's NEOX rope).
    AsStored,
    /// Rows reordered for interleaved pairs (llama.cpp's normal rope, the `llama` arch).
    Interleaved,
}

/// Layer `b`'s attention: q/k/v/o with optional biases and per-head q/k norms, and the two
/// norms around it.
pub(crate) fn attention(
    plan: &mut ModelPlan,
    m: &mut Mapper,
    d: &Dims,
    b: u32,
    rope: RopeLayout,
) -> Result<(), ConvertError> {
    let hf = |s: &str| format!("model.layers.{b}.{s}");
    let gg = |s: &str| format!("blk.{b}.{s}");
    let (q_rows, kv_rows) = (d.n_head * d.head_dim, d.n_head_kv * d.head_dim);
    for (proj, out, rows, n_head) in
        [("q_proj", "attn_q", q_rows, d.n_head), ("k_proj", "attn_k", kv_rows, d.n_head_kv)]
    {
        for kind in ["weight", "bias"] {
            let name = hf(&format!("self_attn.{proj}.{kind}"));
            if kind == "bias" && !m.has(&name) {
                continue;
            }
            let expected: Vec<u64> = if kind == "weight" { vec![rows, d.hidden] } else { vec![rows] };
            let found = m.shape(&name)?;
            if found != expected {
                return Err(ConvertError::ShapeMismatch { name, expected, found: found.to_vec() });
            }
            let source = match rope {
                RopeLayout::AsStored => Source::Tensor(name),
                RopeLayout::Interleaved => Source::RopeInterleaved { name, n_head },
            };
            m.add(plan, gg(&format!("{out}.{kind}")), source)?;
        }
    }
    m.tensor(plan, &hf("self_attn.v_proj.weight"), &gg("attn_v.weight"), &[kv_rows, d.hidden])?;
    m.copy_if_present(plan, &hf("self_attn.v_proj.bias"), &gg("attn_v.bias"))?;
    m.tensor(plan, &hf("self_attn.o_proj.weight"), &gg("attn_output.weight"), &[d.hidden, q_rows])?;
    m.copy_if_present(plan, &hf("self_attn.o_proj.bias"), &gg("attn_output.bias"))?;
    m.copy_if_present(plan, &hf("self_attn.q_norm.weight"), &gg("attn_q_norm.weight"))?;
    m.copy_if_present(plan, &hf("self_attn.k_norm.weight"), &gg("attn_k_norm.weight"))?;
    norms(plan, m, d, b)
}

/// The norms before attention and before the FFN.
pub(crate) fn norms(plan: &mut ModelPlan, m: &mut Mapper, d: &Dims, b: u32) -> Result<(), ConvertError> {
    let hf = |s: &str| format!("model.layers.{b}.{s}");
    let gg = |s: &str| format!("blk.{b}.{s}");
    m.tensor(plan, &hf("input_layernorm.weight"), &gg("attn_norm.weight"), &[d.hidden])?;
    m.tensor(plan, &hf("post_attention_layernorm.weight"), &gg("ffn_norm.weight"), &[d.hidden])
}

/// A gated FFN: `{prefix}.{gate,up,down}_proj` as `blk.b.ffn_{gate,up,down}{suffix}`.
pub(crate) fn gated_ffn(
    plan: &mut ModelPlan,
    m: &mut Mapper,
    d: &Dims,
    b: u32,
    prefix: &str,
    suffix: &str,
    n_ff: u64,
) -> Result<(), ConvertError> {
    let hf = |p: &str| format!("model.layers.{b}.{prefix}.{p}_proj.weight");
    let gg = |p: &str| format!("blk.{b}.ffn_{p}{suffix}.weight");
    m.tensor(plan, &hf("gate"), &gg("gate"), &[n_ff, d.hidden])?;
    m.tensor(plan, &hf("up"), &gg("up"), &[n_ff, d.hidden])?;
    m.tensor(plan, &hf("down"), &gg("down"), &[d.hidden, n_ff])
}

/// Experts stacked into `blk.b.ffn_{gate,up,down}_exps`: `name(expert, part)` gives the
/// Hugging Face name of each expert's `gate`, `up` or `down` matrix.
pub(crate) fn stacked_experts(
    plan: &mut ModelPlan,
    m: &mut Mapper,
    b: u32,
    n_expert: u32,
    name: impl Fn(u32, &str) -> String,
) -> Result<(), ConvertError> {
    for part in ["gate", "up", "down"] {
        let names = (0..n_expert).map(|x| name(x, part)).collect();
        m.add(plan, format!("blk.{b}.ffn_{part}_exps.weight"), Source::Stack(names))?;
    }
    Ok(())
}
