//! Llama-style decoder (Llama 2/3, SmolLM2, Mistral-style dense models, Qwen 2 and 3):
//! pre-norm blocks of RMSNorm → attention (RoPE, GQA) → residual → RMSNorm → SwiGLU → residual.
//! Qwen 2 adds biases to the query, key and value projections (loaded when the file has
//! them), Qwen 3 per-head RMS norms of queries and keys; both rotate with NeoX-style RoPE.
//! Their MoE variants replace the feed-forward block with a mixture of experts (`moe.rs`).
//! Phi 3 fuses the QKV and gate-up projections into one tensor each, viewed here as parts.
//! DeepSeek V2/V3 keep the block but attend through a compressed latent (`mla.rs`) and start
//! with dense layers before their mixture of experts.

use crate::config::{Architecture, ModelConfig};
use crate::decoder::{
    feed_forward, logits, rms_norm_rows, self_attention, AttnSpec, AttnWeights, FfnWeights, Gating, Scratch, StepCtx,
};
use crate::kv::KvCache;
use crate::mla::{latent_attention, MlaWeights};
use crate::moe::{moe_forward, MoeWeights};
use crate::weights::{TensorLoader, Weight};
use crate::ModelError;
use kiln_kernels::{ops, Rope, RopeStyle};

pub struct LlamaLayer {
    /// `[n_embd]`
    attn_norm: Vec<f32>,
    attn: Attention,
    /// `[n_embd]`
    ffn_norm: Vec<f32>,
    ffn: Ffn,
}

/// A layer's attention: per-head keys and values, or a compressed latent.
enum Attention {
    Heads(AttnWeights),
    Latent(MlaWeights),
}

/// A layer's feed-forward block: dense, or a mixture of experts.
enum Ffn {
    Dense(FfnWeights),
    Experts(Box<MoeWeights>),
}

pub struct Llama {
    /// `[vocab][n_embd]`
    token_embd: Weight,
    layers: Vec<LlamaLayer>,
    /// `[n_embd]`
    output_norm: Vec<f32>,
    /// `[vocab][n_embd]`; the embedding table itself when the file ties them.
    output: Weight,
    spec: AttnSpec,
    eps: f32,
    longrope: Option<LongRope>,
}

/// LongRoPE's two sets of per-frequency divisors: short within the original context, long
/// beyond it (`rope_factors_short.weight`, `rope_factors_long.weight`).
struct LongRope {
    short: std::sync::Arc<[f32]>,
    long: std::sync::Arc<[f32]>,
    orig_ctx: usize,
}

impl Llama {
    pub fn load(cfg: &ModelConfig, t: &TensorLoader) -> Result<Llama, ModelError> {
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        let longrope = if t.has("rope_factors_long.weight") {
            Some(LongRope {
                short: t.vector("rope_factors_short.weight", cfg.rope_dims / 2)?.into(),
                long: t.vector("rope_factors_long.weight", cfg.rope_dims / 2)?.into(),
                orig_ctx: cfg.rope_orig_ctx.unwrap_or(cfg.context_length),
            })
        } else {
            None
        };
        let (token_embd, output) = t.embedding_and_output(cfg.vocab_size, d)?;
        let layers = (0..cfg.n_layers)
            .map(|i| {
                let n = |s: &str| format!("blk.{i}.{s}.weight");
                Ok(LlamaLayer {
                    attn_norm: t.vector(&n("attn_norm"), d)?,
                    attn: match (cfg.arch, cfg.mla) {
                        (_, Some(mla)) => Attention::Latent(MlaWeights::load(t, cfg, mla, i)?),
                        (Architecture::Phi3, _) => Attention::Heads(AttnWeights::load_fused(t, cfg, i)?),
                        (Architecture::Qwen3 | Architecture::Qwen3Moe, _) => {
                            Attention::Heads(AttnWeights::load(t, cfg, i, true)?)
                        }
                        _ => Attention::Heads(AttnWeights::load(t, cfg, i, false)?),
                    },
                    ffn_norm: t.vector(&n("ffn_norm"), d)?,
                    ffn: match cfg.moe {
                        Some(moe) if i >= moe.n_dense_lead => Ffn::Experts(Box::new(MoeWeights::load(t, cfg, moe, i)?)),
                        _ if cfg.arch == Architecture::Phi3 => Ffn::Dense(FfnWeights::load_fused(t, cfg, i)?),
                        _ => Ffn::Dense(FfnWeights::load(t, cfg, i)?),
                    },
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Llama {
            token_embd,
            layers,
            output_norm: t.vector("output_norm.weight", d)?,
            output,
            spec: AttnSpec {
                n_heads: cfg.n_heads,
                n_kv_heads: cfg.n_kv_heads,
                head_dim: hd,
                rope: Rope {
                    style: match cfg.arch {
                        Architecture::Qwen2
                        | Architecture::Qwen3
                        | Architecture::Qwen2Moe
                        | Architecture::Qwen3Moe
                        | Architecture::Phi3 => RopeStyle::Neox,
                        _ => RopeStyle::Normal,
                    },
                    n_dims: cfg.rope_dims,
                    freq_base: cfg.rope_freq_base,
                    freq_scale: cfg.rope_freq_scale,
                    // Llama 3.1+ scale their RoPE per frequency; the converter stores the factors.
                    // LongRoPE models (Phi 3) start on their short factors; `set_context`
                    // switches to the long ones for contexts beyond the original.
                    freq_factors: if t.has("rope_freqs.weight") {
                        Some(t.vector("rope_freqs.weight", cfg.rope_dims / 2)?.into())
                    } else {
                        longrope.as_ref().map(|l| l.short.clone())
                    },
                    attn_factor: cfg.rope_mscale(),
                    yarn: cfg.yarn_ramp(cfg.rope_freq_base),
                },
                rms_eps: cfg.rms_eps,
                // Latent attention's keys are wider than the heads it stands for.
                scale: match &cfg.mla {
                    Some(mla) => cfg.mla_kq_scale(mla),
                    None => 1.0 / (hd as f32).sqrt(),
                },
                // Only Phi 3 has a window among these, on every layer.
                window: cfg.sliding_window,
            },
            eps: cfg.rms_eps,
            longrope,
        })
    }

    /// Chooses LongRoPE's factors for sequences of up to `num_ctx` tokens, as llama.cpp does:
    /// the long ones when the context exceeds the original.
    pub fn set_context(&mut self, num_ctx: usize) {
        if let Some(l) = &self.longrope {
            let factors = if num_ctx > l.orig_ctx { &l.long } else { &l.short };
            self.spec.rope.freq_factors = Some(factors.clone());
        }
    }

    pub fn forward(&self, ctx: &StepCtx, kv: &mut KvCache, s: &mut Scratch) -> Vec<f32> {
        let mut x = std::mem::take(&mut s.x);
        ctx.embed(&self.token_embd, &mut x);
        for (il, layer) in self.layers.iter().enumerate() {
            rms_norm_rows(&x, &layer.attn_norm, self.eps, &mut s.h);
            match &layer.attn {
                Attention::Heads(w) => self_attention(ctx, w, &self.spec, il, kv, s),
                Attention::Latent(w) => latent_attention(ctx, w, &self.spec, il, kv, s),
            }
            ops::add_inplace(&mut x, &s.out);
            rms_norm_rows(&x, &layer.ffn_norm, self.eps, &mut s.h);
            match &layer.ffn {
                Ffn::Dense(ffn) => feed_forward(ctx, ffn, Gating::Silu, s),
                Ffn::Experts(moe) => {
                    let mut m = std::mem::take(&mut s.moe);
                    moe_forward(ctx, moe, s, &mut m);
                    s.moe = m;
                }
            }
            ops::add_inplace(&mut x, &s.out);
        }
        let out = logits(ctx, &x, &self.output_norm, self.eps, &self.output, s);
        s.x = x;
        out
    }
}
