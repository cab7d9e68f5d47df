//! Multi-head latent attention (DeepSeek V2/V3), computed as llama.cpp does with the
//! decompression matrices absorbed:
//!
//! - the input is compressed to a latent `c` (`attn_kv_a_mqa`, then RMS-normed) plus one rotary
//!   key `k_r` shared by all heads; the cache holds `[c, rope(k_r)]` per token, one "KV head";
//! - each query head `[q_nope, q_rope]` becomes `[W_kb·q_nope, rope(q_rope)]`, so that its dot
//!   product with a cached `[c, k_r]` equals the one with the decompressed key
//!   `[W_kbᵀ·c, k_r]` (`attn_k_b` is each head's key decompression, transposed);
//! - attention averages the latents `c` themselves (the cache's values are its keys' prefix),
//!   and each head's result goes through its value decompression `attn_v_b` afterwards.
//!
//! Per token and layer the cache holds `kv_lora_rank + rope_dims` values instead of
//! `n_heads · (qk_head_dim + v_head_dim)` for the decompressed keys and values.

use crate::config::{MlaConfig, ModelConfig};
use crate::decoder::{AttnSpec, Scratch, StepCtx};
use crate::kv::KvCache;
use crate::weights::{TensorLoader, Weight};
use crate::ModelError;
use kiln_kernels::{ops, paged_attention, AttnParams, AttnQuery};

/// How queries are made: through a low-rank bottleneck with its own norm, or directly.
enum QueryProj {
    Compressed {
        /// `[q_lora_rank][n_embd]`
        a: Weight,
        /// `[q_lora_rank]`
        norm: Vec<f32>,
        /// `[n_heads·qk_head_dim][q_lora_rank]`
        b: Weight,
    },
    /// `[n_heads·qk_head_dim][n_embd]` (DeepSeek V2 Lite).
    Direct(Weight),
}

/// One layer's latent attention weights.
pub struct MlaWeights {
    query: QueryProj,
    /// `[kv_lora_rank + rope_dims][n_embd]`: the latent, then the shared rotary key.
    kv_a: Weight,
    /// `[kv_lora_rank]`
    kv_a_norm: Vec<f32>,
    /// Per head `[kv_lora_rank][qk_nope_head_dim]`: maps a query's unrotated part into the
    /// latent space.
    k_b: Vec<Weight>,
    /// Per head `[v_head_dim][kv_lora_rank]`: decompresses the attended latent into a value.
    v_b: Vec<Weight>,
    /// `[n_embd][n_heads·v_head_dim]`
    wo: Weight,
    dims: MlaConfig,
}

/// Buffers of latent attention, kept between steps.
#[derive(Default)]
pub struct MlaScratch {
    /// Compressed queries `[n_tokens][q_lora_rank]`.
    q_a: Vec<f32>,
    /// Latents and rotary keys `[n_tokens][kv_lora_rank + rope_dims]`.
    kv: Vec<f32>,
    /// Queries in the cache's space `[n_tokens][n_heads][kv_lora_rank + rope_dims]`.
    q_latent: Vec<f32>,
    /// One head's rows across the step's tokens, and their product.
    head_in: Vec<f32>,
    head_out: Vec<f32>,
    /// Decompressed values `[n_tokens][n_heads·v_head_dim]`.
    values: Vec<f32>,
}

impl MlaWeights {
    pub fn load(t: &TensorLoader, cfg: &ModelConfig, dims: MlaConfig, il: usize) -> Result<MlaWeights, ModelError> {
        let d = cfg.n_embd;
        let n = |s: &str| format!("blk.{il}.{s}.weight");
        let q_len = cfg.n_heads * (dims.qk_nope_head_dim + cfg.rope_dims);
        let query = match dims.q_lora_rank {
            Some(r) => QueryProj::Compressed {
                a: t.matrix(&n("attn_q_a"), r, d)?,
                norm: t.vector(&n("attn_q_a_norm"), r)?,
                b: t.matrix(&n("attn_q_b"), q_len, r)?,
            },
            None => QueryProj::Direct(t.matrix(&n("attn_q"), q_len, d)?),
        };
        let kv_lora = dims.kv_lora_rank;
        Ok(MlaWeights {
            query,
            kv_a: t.matrix(&n("attn_kv_a_mqa"), kv_lora + cfg.rope_dims, d)?,
            kv_a_norm: t.vector(&n("attn_kv_a_norm"), kv_lora)?,
            k_b: t.matrices(&n("attn_k_b"), cfg.n_heads, kv_lora, dims.qk_nope_head_dim)?,
            v_b: t.matrices(&n("attn_v_b"), cfg.n_heads, dims.v_head_dim, kv_lora)?,
            wo: t.matrix(&n("attn_output"), d, cfg.n_heads * dims.v_head_dim)?,
            dims,
        })
    }
}

/// Copies column block `[col, col + width)` of the `stride`-wide rows of `src` into `dst`, one
/// row per token: a head's slice of every token, for a per-head product.
fn gather(src: &[f32], stride: usize, col: usize, width: usize, dst: &mut Vec<f32>) {
    dst.clear();
    for row in src.chunks_exact(stride) {
        dst.extend_from_slice(&row[col..col + width]);
    }
}

/// The inverse of [`gather`]: writes `width`-wide rows of `src` into column block `col` of `dst`.
fn scatter(src: &[f32], width: usize, dst: &mut [f32], stride: usize, col: usize) {
    for (s, d) in src.chunks_exact(width).zip(dst.chunks_exact_mut(stride)) {
        d[col..col + width].copy_from_slice(s);
    }
}

/// Latent attention of a layer: `s.h` (normalised input) → `s.out`. `spec.head_dim` is the
/// cache's key width (`kv_lora_rank + rope_dims`) and `spec.rope` rotates `rope_dims`.
pub fn latent_attention(
    ctx: &StepCtx,
    w: &MlaWeights,
    spec: &AttnSpec,
    layer: usize,
    kv: &mut KvCache,
    s: &mut Scratch,
) {
    let m = &mut s.mla;
    let (n_tokens, n_heads) = (ctx.n_tokens(), spec.n_heads);
    let (nope, rope_dims, latent, v_dim) =
        (w.dims.qk_nope_head_dim, spec.rope.n_dims, w.dims.kv_lora_rank, w.dims.v_head_dim);
    let (qk_head, key_len) = (nope + rope_dims, latent + rope_dims);
    match &w.query {
        QueryProj::Compressed { a, norm, b } => {
            ctx.linear_group([a, &w.kv_a], &s.h, [&mut m.q_a, &mut m.kv], &mut s.mm);
            ops::rms_norm_rows_inplace(&mut m.q_a, norm, spec.rms_eps);
            ctx.linear(b, &m.q_a, &mut s.q, &mut s.mm);
        }
        QueryProj::Direct(wq) => ctx.linear_group([wq, &w.kv_a], &s.h, [&mut s.q, &mut m.kv], &mut s.mm),
    }
    let batch = ctx.batch;
    m.q_latent.resize(n_tokens * n_heads * key_len, 0.0);
    for t in 0..n_tokens {
        let pos = batch.positions[t];
        let kv_row = &mut m.kv[t * key_len..(t + 1) * key_len];
        ops::rms_norm_rows_inplace(&mut kv_row[..latent], &w.kv_a_norm, spec.rms_eps);
        spec.rope.apply(&mut kv_row[latent..], rope_dims, pos);
        for h in 0..n_heads {
            let q_head = &mut s.q[(t * n_heads + h) * qk_head..(t * n_heads + h + 1) * qk_head];
            spec.rope.apply(&mut q_head[nope..], rope_dims, pos);
            let dst = (t * n_heads + h) * key_len + latent;
            m.q_latent[dst..dst + rope_dims].copy_from_slice(&q_head[nope..]);
        }
    }
    // Each head's unrotated query into the latent space, all tokens in one product per head.
    for (h, k_b) in w.k_b.iter().enumerate() {
        gather(&s.q, n_heads * qk_head, h * qk_head, nope, &mut m.head_in);
        ctx.linear_rows(k_b, &m.head_in, n_tokens, &mut m.head_out, &mut s.mm);
        scatter(&m.head_out, latent, &mut m.q_latent, n_heads * key_len, h * key_len);
    }
    let layout = kv.layout;
    let cache = &mut kv.layers[layer];
    for t in 0..n_tokens {
        let table = &batch.block_tables[batch.seq[t]];
        cache.write(&layout, table, batch.positions[t] as usize, &m.kv[t * key_len..(t + 1) * key_len], &[]);
    }
    let queries: Vec<AttnQuery> = (0..n_tokens)
        .map(|t| AttnQuery { pos: batch.positions[t], block_table: &batch.block_tables[batch.seq[t]] })
        .collect();
    s.attn.resize(n_tokens * n_heads * latent, 0.0);
    let params = AttnParams { n_heads, scale: spec.scale, window: None, v_dim: latent };
    paged_attention(ctx.pool, &layout, cache, &params, &queries, &m.q_latent, &mut s.attn);
    m.values.resize(n_tokens * n_heads * v_dim, 0.0);
    for (h, v_b) in w.v_b.iter().enumerate() {
        gather(&s.attn, n_heads * latent, h * latent, latent, &mut m.head_in);
        ctx.linear_rows(v_b, &m.head_in, n_tokens, &mut m.head_out, &mut s.mm);
        scatter(&m.head_out, v_dim, &mut m.values, n_heads * v_dim, h * v_dim);
    }
    ctx.linear(&w.wo, &m.values, &mut s.out, &mut s.mm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_and_scatter_move_one_column_block() {
        // Two tokens of three 2-wide heads.
        let src = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        let mut head = Vec::new();
        gather(&src, 6, 2, 2, &mut head);
        assert_eq!(head, [3.0, 4.0, 9.0, 10.0]);
        let mut dst = [0.0; 8];
        scatter(&head, 2, &mut dst, 4, 1);
        assert_eq!(dst, [0.0, 3.0, 4.0, 0.0, 0.0, 9.0, 10.0, 0.0]);
    }
}
