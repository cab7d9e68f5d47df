//! Gemma 3 decoder: embeddings scaled by √n_embd; each block is
//! RMSNorm → attention (QK-norm, RoPE NeoX-style, local sliding-window layers with their own
//! RoPE base, one global layer in every six) → RMSNorm → residual → RMSNorm → GeGLU →
//! RMSNorm → residual; output tied to the embeddings.
//! (GGUF stores Gemma's norm weights with the +1 already folded in, so plain RMSNorm applies.)

use crate::config::ModelConfig;
use crate::decoder::{
    feed_forward, logits, rms_norm_rows, self_attention, AttnSpec, AttnWeights, FfnWeights, Gating, Scratch, StepCtx,
};
use crate::kv::KvCache;
use crate::weights::{TensorLoader, Weight};
use crate::ModelError;
use kiln_kernels::{ops, Rope, RopeStyle};

pub struct Gemma3Layer {
    attn_norm: Vec<f32>,
    attn: AttnWeights,
    /// Norm of the attention output before the residual add.
    attn_post_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    ffn: FfnWeights,
    /// Norm of the feed-forward output before the residual add.
    ffn_post_norm: Vec<f32>,
    spec: AttnSpec,
}

pub struct Gemma3 {
    /// `[vocab][n_embd]`, also the output projection unless the file has `output.weight`.
    token_embd: Weight,
    output: Weight,
    layers: Vec<Gemma3Layer>,
    output_norm: Vec<f32>,
    embd_scale: f32,
    eps: f32,
}

impl Gemma3 {
    pub fn load(cfg: &ModelConfig, t: &TensorLoader) -> Result<Gemma3, ModelError> {
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        let (token_embd, output) = t.embedding_and_output(cfg.vocab_size, d)?;
        let layers = (0..cfg.n_layers)
            .map(|i| {
                let n = |s: &str| format!("blk.{i}.{s}.weight");
                let sliding = cfg.is_sliding(i);
                let freq_base = if sliding { cfg.rope_freq_base_swa } else { cfg.rope_freq_base };
                // Local layers are not scaled: only the global ones take the long-context factor.
                let freq_scale = if sliding { 1.0 } else { cfg.rope_freq_scale };
                Ok(Gemma3Layer {
                    attn_norm: t.vector(&n("attn_norm"), d)?,
                    attn: AttnWeights::load(t, cfg, i, true)?,
                    attn_post_norm: t.vector(&n("post_attention_norm"), d)?,
                    ffn_norm: t.vector(&n("ffn_norm"), d)?,
                    ffn: FfnWeights::load(t, cfg, i)?,
                    ffn_post_norm: t.vector(&n("post_ffw_norm"), d)?,
                    spec: AttnSpec {
                        n_heads: cfg.n_heads,
                        n_kv_heads: cfg.n_kv_heads,
                        head_dim: hd,
                        rope: Rope {
                            style: RopeStyle::Neox,
                            n_dims: cfg.rope_dims,
                            freq_base,
                            freq_scale,
                            freq_factors: None,
                            attn_factor: 1.0,
                            yarn: None,
                        },
                        rms_eps: cfg.rms_eps,
                        // Gemma scales by 1/√head_dim (query_pre_attn_scalar = head_dim below 27B).
                        scale: 1.0 / (hd as f32).sqrt(),
                        window: if sliding { cfg.sliding_window } else { None },
                    },
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Gemma3 {
            token_embd,
            output,
            layers,
            output_norm: t.vector("output_norm.weight", d)?,
            embd_scale: (d as f32).sqrt(),
            eps: cfg.rms_eps,
        })
    }

    pub fn forward(&self, ctx: &StepCtx, kv: &mut KvCache, s: &mut Scratch) -> Vec<f32> {
        let mut x = std::mem::take(&mut s.x);
        ctx.embed(&self.token_embd, &mut x);
        ops::scale_inplace(&mut x, self.embd_scale);
        for (il, layer) in self.layers.iter().enumerate() {
            rms_norm_rows(&x, &layer.attn_norm, self.eps, &mut s.h);
            self_attention(ctx, &layer.attn, &layer.spec, il, kv, s);
            ops::rms_norm_rows_inplace(&mut s.out, &layer.attn_post_norm, self.eps);
            ops::add_inplace(&mut x, &s.out);
            rms_norm_rows(&x, &layer.ffn_norm, self.eps, &mut s.h);
            feed_forward(ctx, &layer.ffn, Gating::Gelu, s);
            ops::rms_norm_rows_inplace(&mut s.out, &layer.ffn_post_norm, self.eps);
            ops::add_inplace(&mut x, &s.out);
        }
        let out = logits(ctx, &x, &self.output_norm, self.eps, &self.output, s);
        s.x = x;
        out
    }
}
