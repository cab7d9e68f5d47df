//! The pieces every decoder-only architecture is built from, over a flat batch of tokens.
//! Each architecture file composes them in its own order (see `llama.rs`, `gemma3.rs`).

use crate::batch::Batch;
use crate::config::ModelConfig;
use crate::kv::KvCache;
use crate::weights::{TensorLoader, Weight};
use crate::ModelError;
use kiln_gguf::GgufFile;
use kiln_kernels::{
    matmul, matmul_group, ops, paged_attention, AttnParams, AttnQuery, MatmulScratch, Rope, ThreadPool,
};

/// Per-step buffers, reused across steps so the token loop does not allocate.
#[derive(Default)]
pub struct Scratch {
    /// Residual stream `[n_tokens][n_embd]`.
    pub x: Vec<f32>,
    /// Normalised input of a sub-block `[n_tokens][n_embd]`.
    pub h: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub attn: Vec<f32>,
    /// Output of a sub-block before it joins the residual `[n_tokens][n_embd]`.
    pub out: Vec<f32>,
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    pub mm: MatmulScratch,
    /// Buffers of mixture-of-experts blocks.
    pub moe: crate::moe::MoeScratch,
    /// Buffers of latent attention.
    pub mla: crate::mla::MlaScratch,
}

fn resize(v: &mut Vec<f32>, n: usize) {
    v.resize(n, 0.0);
}

/// Everything a step needs besides the weights.
pub struct StepCtx<'a> {
    pub file: &'a GgufFile,
    pub pool: &'a ThreadPool,
    pub batch: &'a Batch,
}

impl StepCtx<'_> {
    pub fn n_tokens(&self) -> usize {
        self.batch.len()
    }

    /// `y = x · Wᵀ` for all tokens of the step.
    pub fn linear(&self, w: &Weight, x: &[f32], y: &mut Vec<f32>, mm: &mut MatmulScratch) {
        let n = self.n_tokens();
        resize(y, n * w.rows);
        matmul(self.pool, &w.view(self.file), x, n, y, mm);
    }

    /// `y = x · Wᵀ` for `m` rows of `x` that are not the step's tokens (those routed to one
    /// expert, say).
    pub fn linear_rows(&self, w: &Weight, x: &[f32], m: usize, y: &mut Vec<f32>, mm: &mut MatmulScratch) {
        resize(y, m * w.rows);
        matmul(self.pool, &w.view(self.file), x, m, y, mm);
    }

    /// Several products over the same input as one parallel job (see `matmul_group`).
    pub fn linear_group<const N: usize>(
        &self,
        ws: [&Weight; N],
        x: &[f32],
        ys: [&mut Vec<f32>; N],
        mm: &mut MatmulScratch,
    ) {
        let n = self.n_tokens();
        let views: Vec<_> = ws.iter().map(|w| w.view(self.file)).collect();
        let mut outs: Vec<&mut [f32]> = ys
            .into_iter()
            .zip(&ws)
            .map(|(y, w)| {
                resize(y, n * w.rows);
                y.as_mut_slice()
            })
            .collect();
        matmul_group(self.pool, &views, x, n, &mut outs, mm);
    }

    /// Embedding rows of the batch's tokens into `x`.
    pub fn embed(&self, table: &Weight, x: &mut Vec<f32>) {
        let view = table.view(self.file);
        resize(x, self.n_tokens() * table.cols);
        for (row, &tok) in x.chunks_exact_mut(table.cols).zip(&self.batch.tokens) {
            view.dequantize_row(tok as usize, row);
        }
    }
}

/// RMS-normalises each row of `x` into `out`.
pub fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32, out: &mut Vec<f32>) {
    resize(out, x.len());
    let n = weight.len();
    for (src, dst) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        ops::rms_norm(src, weight, eps, dst);
    }
}

/// Attention projections of one layer.
pub struct AttnWeights {
    /// `[n_heads·head_dim][n_embd]`
    pub wq: Weight,
    /// `[n_kv_heads·head_dim][n_embd]`
    pub wk: Weight,
    /// `[n_kv_heads·head_dim][n_embd]`
    pub wv: Weight,
    /// `[n_embd][n_heads·head_dim]`
    pub wo: Weight,
    /// Per-head RMS norms of queries and keys (Gemma 3, Qwen 3), `[head_dim]`.
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    /// Biases of the query, key and value projections (Qwen 2), when the file has them.
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
}

impl AttnWeights {
    /// Phi 3's layer `il`: one fused `attn_qkv` tensor, viewed as its three parts.
    pub fn load_fused(t: &TensorLoader, cfg: &ModelConfig, il: usize) -> Result<AttnWeights, ModelError> {
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        let (q_len, kv_len) = (cfg.n_heads * hd, cfg.n_kv_heads * hd);
        let n = |s: &str| format!("blk.{il}.{s}.weight");
        let [wq, wk, wv]: [Weight; 3] =
            t.split_rows(&n("attn_qkv"), &[q_len, kv_len, kv_len], d)?.try_into().expect("three parts were asked for");
        Ok(AttnWeights {
            wq,
            wk,
            wv,
            wo: t.matrix(&n("attn_output"), d, q_len)?,
            q_norm: None,
            k_norm: None,
            bq: None,
            bk: None,
            bv: None,
        })
    }

    /// Layer `il`'s projections under llama.cpp's names; with `qk_norm`, also the per-head
    /// query and key norms.
    pub fn load(t: &TensorLoader, cfg: &ModelConfig, il: usize, qk_norm: bool) -> Result<AttnWeights, ModelError> {
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        let n = |s: &str| format!("blk.{il}.{s}.weight");
        let bias = |s: &str, len: usize| {
            let name = format!("blk.{il}.{s}.bias");
            if t.has(&name) {
                t.vector(&name, len).map(Some)
            } else {
                Ok(None)
            }
        };
        let (q_len, kv_len) = (cfg.n_heads * hd, cfg.n_kv_heads * hd);
        Ok(AttnWeights {
            bq: bias("attn_q", q_len)?,
            bk: bias("attn_k", kv_len)?,
            bv: bias("attn_v", kv_len)?,
            wq: t.matrix(&n("attn_q"), cfg.n_heads * hd, d)?,
            wk: t.matrix(&n("attn_k"), cfg.n_kv_heads * hd, d)?,
            wv: t.matrix(&n("attn_v"), cfg.n_kv_heads * hd, d)?,
            wo: t.matrix(&n("attn_output"), d, cfg.n_heads * hd)?,
            q_norm: if qk_norm { Some(t.vector(&n("attn_q_norm"), hd)?) } else { None },
            k_norm: if qk_norm { Some(t.vector(&n("attn_k_norm"), hd)?) } else { None },
        })
    }
}

/// How one layer's attention is computed.
pub struct AttnSpec {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub rope: Rope,
    pub rms_eps: f32,
    /// Multiplies the scores q·k.
    pub scale: f32,
    pub window: Option<u32>,
}

/// Self-attention of a layer: `s.h` (normalised input) → `s.out` (before the residual add).
/// Writes this step's keys and values into the cache first, so tokens of the same step see
/// each other (causally).
pub fn self_attention(
    ctx: &StepCtx,
    w: &AttnWeights,
    spec: &AttnSpec,
    layer: usize,
    kv: &mut KvCache,
    s: &mut Scratch,
) {
    let hd = spec.head_dim;
    ctx.linear_group([&w.wq, &w.wk, &w.wv], &s.h, [&mut s.q, &mut s.k, &mut s.v], &mut s.mm);
    for (bias, y) in [(&w.bq, &mut s.q), (&w.bk, &mut s.k), (&w.bv, &mut s.v)] {
        if let Some(b) = bias {
            for row in y.chunks_exact_mut(b.len()) {
                ops::add_inplace(row, b);
            }
        }
    }
    if let Some(norm) = &w.q_norm {
        ops::rms_norm_rows_inplace(&mut s.q, norm, spec.rms_eps);
    }
    if let Some(norm) = &w.k_norm {
        ops::rms_norm_rows_inplace(&mut s.k, norm, spec.rms_eps);
    }
    let batch = ctx.batch;
    let q_row = spec.n_heads * hd;
    let kv_row = spec.n_kv_heads * hd;
    let layout = kv.layout;
    let cache = &mut kv.layers[layer];
    for t in 0..batch.len() {
        let pos = batch.positions[t];
        spec.rope.apply(&mut s.q[t * q_row..(t + 1) * q_row], hd, pos);
        spec.rope.apply(&mut s.k[t * kv_row..(t + 1) * kv_row], hd, pos);
        let table = &batch.block_tables[batch.seq[t]];
        cache.write(
            &layout,
            table,
            pos as usize,
            &s.k[t * kv_row..(t + 1) * kv_row],
            &s.v[t * kv_row..(t + 1) * kv_row],
        );
    }
    let queries: Vec<AttnQuery> = (0..batch.len())
        .map(|t| AttnQuery { pos: batch.positions[t], block_table: &batch.block_tables[batch.seq[t]] })
        .collect();
    resize(&mut s.attn, batch.len() * q_row);
    let params = AttnParams { n_heads: spec.n_heads, scale: spec.scale, window: spec.window, v_dim: hd };
    paged_attention(ctx.pool, &layout, cache, &params, &queries, &s.q, &mut s.attn);
    ctx.linear(&w.wo, &s.attn, &mut s.out, &mut s.mm);
}

/// Gated feed-forward weights.
pub struct FfnWeights {
    /// `[n_ff][n_embd]`
    pub gate: Weight,
    /// `[n_ff][n_embd]`
    pub up: Weight,
    /// `[n_embd][n_ff]`
    pub down: Weight,
}

impl FfnWeights {
    /// Phi 3's layer `il`: gate and up fused in one `ffn_up` tensor (gate first).
    pub fn load_fused(t: &TensorLoader, cfg: &ModelConfig, il: usize) -> Result<FfnWeights, ModelError> {
        let n = |s: &str| format!("blk.{il}.{s}.weight");
        let [gate, up]: [Weight; 2] = t
            .split_rows(&n("ffn_up"), &[cfg.n_ff, cfg.n_ff], cfg.n_embd)?
            .try_into()
            .expect("two parts were asked for");
        Ok(FfnWeights { gate, up, down: t.matrix(&n("ffn_down"), cfg.n_embd, cfg.n_ff)? })
    }

    /// Layer `il`'s feed-forward matrices under llama.cpp's names.
    pub fn load(t: &TensorLoader, cfg: &ModelConfig, il: usize) -> Result<FfnWeights, ModelError> {
        let n = |s: &str| format!("blk.{il}.{s}.weight");
        Ok(FfnWeights {
            gate: t.matrix(&n("ffn_gate"), cfg.n_ff, cfg.n_embd)?,
            up: t.matrix(&n("ffn_up"), cfg.n_ff, cfg.n_embd)?,
            down: t.matrix(&n("ffn_down"), cfg.n_embd, cfg.n_ff)?,
        })
    }
}

/// Activation of the gate.
#[derive(Clone, Copy)]
pub enum Gating {
    Silu,
    Gelu,
}

/// Gated feed-forward: `s.h` → `s.out`.
pub fn feed_forward(ctx: &StepCtx, w: &FfnWeights, gating: Gating, s: &mut Scratch) {
    ctx.linear_group([&w.gate, &w.up], &s.h, [&mut s.gate, &mut s.up], &mut s.mm);
    let n = s.gate.len();
    // The activation goes into `attn`, free at this point, to keep one buffer per role.
    resize(&mut s.attn, n);
    match gating {
        Gating::Silu => ops::swiglu(&s.gate, &s.up, &mut s.attn),
        Gating::Gelu => ops::geglu(&s.gate, &s.up, &mut s.attn),
    }
    ctx.linear(&w.down, &s.attn, &mut s.out, &mut s.mm);
}

/// Final norm and vocabulary projection for the tokens in `batch.logits_for`.
pub fn logits(ctx: &StepCtx, x: &[f32], norm: &[f32], eps: f32, output: &Weight, s: &mut Scratch) -> Vec<f32> {
    let d = norm.len();
    let rows = &ctx.batch.logits_for;
    resize(&mut s.h, rows.len() * d);
    for (i, &t) in rows.iter().enumerate() {
        ops::rms_norm(&x[t * d..(t + 1) * d], norm, eps, &mut s.h[i * d..(i + 1) * d]);
    }
    let mut out = vec![0f32; rows.len() * output.rows];
    matmul(ctx.pool, &output.view(ctx.file), &s.h, rows.len(), &mut out, &mut s.mm);
    out
}
