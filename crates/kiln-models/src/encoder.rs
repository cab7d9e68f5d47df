//! Encoder models (BERT and Nomic BERT): each input is one sequence whose tokens all see each
//! other, and the model's output is one pooled vector per input, not logits.
//!
//! There is no KV cache and no decoding, so inputs take a dense path rather than the paged
//! one: the tokens of all inputs are stacked into one matrix (each weight is read once for the
//! whole batch) and attention runs within each input's own rows. The layer order is BERT's
//! post-norm one, as llama.cpp's `bert` graph computes it:
//!
//! ```text
//! x = LayerNorm(tok_embd[t] + token_types[0] + position_embd[p])      (positions: BERT only)
//! per layer:  a = LayerNorm(x + W_o · Attention(x) + b_o)             (RoPE on q, k: Nomic)
//!             x = LayerNorm(a + FFN(a))   FFN = down(gelu(up a))       (BERT)
//!                                               down(silu(gate a) ⊙ up a) (Nomic)
//! ```

use crate::encoder_config::{EncoderArch, EncoderConfig, Pooling};
use crate::weights::{TensorLoader, Weight};
use crate::ModelError;
use kiln_gguf::GgufFile;
use kiln_kernels::{
    bidirectional_attention, matmul, ops, BidirectionalParams, MatmulScratch, Rope, RopeStyle, ThreadPool,
};
use std::ops::Range;
use std::sync::Arc;

/// A projection with its optional bias.
struct Linear {
    w: Weight,
    b: Option<Vec<f32>>,
}

/// LayerNorm's scale and shift.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attn_norm: Norm,
    up: Linear,
    /// SwiGLU's gate (Nomic BERT); without it the feed-forward is GELU.
    gate: Option<Linear>,
    down: Linear,
    out_norm: Norm,
}

/// A loaded encoder. Weights stay in the memory-mapped file.
pub struct Encoder {
    file: Arc<GgufFile>,
    config: EncoderConfig,
    vocab_size: usize,
    tok_embd: Weight,
    /// Row 0 of the token type table: every input is "sentence A".
    type_embd: Option<Vec<f32>>,
    pos_embd: Option<Weight>,
    embd_norm: Norm,
    rope: Option<Rope>,
    layers: Vec<Layer>,
}

impl Encoder {
    /// Builds an encoder over an already parsed file, checking every tensor's shape.
    pub fn from_file(file: Arc<GgufFile>) -> Result<Encoder, ModelError> {
        let c = EncoderConfig::from_gguf(&file)?;
        let t = TensorLoader::new(&file);
        let d = c.n_embd;
        let vocab_size = match file.tensor("token_embd.weight") {
            Some(info) if info.dims.len() == 2 => info.dims[1] as usize,
            Some(info) => {
                return Err(ModelError::BadShape {
                    name: "token_embd.weight".into(),
                    expected: vec![d as u64, 0],
                    found: info.dims.clone(),
                })
            }
            None => return Err(ModelError::MissingTensor("token_embd.weight".into())),
        };
        let type_embd = match file.tensor("token_types.weight").map(|i| i.dims.get(1).copied().unwrap_or(0)) {
            Some(n_types) => {
                let table = t.matrix("token_types.weight", n_types as usize, d)?;
                let mut row = vec![0f32; d];
                table.view(&file).dequantize_row(0, &mut row);
                Some(row)
            }
            None => None,
        };
        let pos_embd = match c.arch {
            EncoderArch::Bert => Some(t.matrix("position_embd.weight", c.context_length, d)?),
            EncoderArch::NomicBert => None,
        };
        let rope = match c.arch {
            EncoderArch::Bert => None,
            EncoderArch::NomicBert => Some(Rope {
                style: RopeStyle::Neox,
                n_dims: c.rope_dims,
                freq_base: c.rope_freq_base,
                freq_scale: 1.0,
                freq_factors: None,
                attn_factor: 1.0,
                yarn: None,
            }),
        };
        let layers = (0..c.n_layers).map(|il| load_layer(&t, &c, il)).collect::<Result<_, _>>()?;
        Ok(Encoder {
            tok_embd: t.matrix("token_embd.weight", vocab_size, d)?,
            type_embd,
            pos_embd,
            embd_norm: norm(&t, "token_embd_norm", d)?,
            rope,
            layers,
            vocab_size,
            config: c,
            file,
        })
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Tokens in the vocabulary (rows of the token embedding table).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// One pooled vector (`n_embd` values, not normalised) per input. Inputs are token ids
    /// (special tokens included), each non-empty and at most `context_length` long.
    pub fn embed(&self, pool: &ThreadPool, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>, ModelError> {
        let c = &self.config;
        let mut seqs: Vec<Range<usize>> = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            if input.is_empty() || input.len() > c.context_length {
                return Err(ModelError::BadBatch(format!(
                    "input {i} has {} tokens; an encoder input needs 1 to {}",
                    input.len(),
                    c.context_length
                )));
            }
            if let Some(&bad) = input.iter().find(|&&t| t as usize >= self.vocab_size) {
                return Err(ModelError::BadBatch(format!(
                    "token {bad} is outside the vocabulary of {}",
                    self.vocab_size
                )));
            }
            let start = seqs.last().map_or(0, |s| s.end);
            seqs.push(start..start + input.len());
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let mut s = Pass { pool, file: &self.file, n: seqs.last().map_or(0, |r| r.end), mm: MatmulScratch::default() };
        let mut x = self.input_states(inputs);
        for layer in &self.layers {
            x = self.layer(&mut s, layer, &seqs, &x);
        }
        Ok(seqs.iter().map(|r| pool_rows(&x[r.start * c.n_embd..r.end * c.n_embd], c.n_embd, c.pooling)).collect())
    }

    /// Normalised sum of token, type and position embeddings, `[n_tokens][n_embd]`.
    fn input_states(&self, inputs: &[&[u32]]) -> Vec<f32> {
        let d = self.config.n_embd;
        let (tok, pos) = (self.tok_embd.view(&self.file), self.pos_embd.map(|w| w.view(&self.file)));
        let mut sum = vec![0f32; d];
        let mut row = vec![0f32; d];
        let mut x = Vec::with_capacity(inputs.iter().map(|i| i.len()).sum::<usize>() * d);
        for input in inputs {
            for (p, &t) in input.iter().enumerate() {
                tok.dequantize_row(t as usize, &mut sum);
                if let Some(types) = &self.type_embd {
                    ops::add_inplace(&mut sum, types);
                }
                if let Some(pos) = &pos {
                    pos.dequantize_row(p, &mut row);
                    ops::add_inplace(&mut sum, &row);
                }
                let at = x.len();
                x.resize(at + d, 0.0);
                ops::layer_norm(&sum, &self.embd_norm.weight, &self.embd_norm.bias, self.config.norm_eps, &mut x[at..]);
            }
        }
        x
    }

    fn layer(&self, s: &mut Pass, l: &Layer, seqs: &[Range<usize>], x: &[f32]) -> Vec<f32> {
        let c = &self.config;
        let (mut q, mut k, v) = (s.linear(&l.q, x), s.linear(&l.k, x), s.linear(&l.v, x));
        if let Some(rope) = &self.rope {
            let row = c.n_heads * c.head_dim;
            for seq in seqs {
                for (p, t) in seq.clone().enumerate() {
                    rope.apply(&mut q[t * row..(t + 1) * row], c.head_dim, p as u32);
                    rope.apply(&mut k[t * row..(t + 1) * row], c.head_dim, p as u32);
                }
            }
        }
        let mut attn = vec![0f32; q.len()];
        let params =
            BidirectionalParams { n_heads: c.n_heads, head_dim: c.head_dim, scale: 1.0 / (c.head_dim as f32).sqrt() };
        bidirectional_attention(s.pool, &params, seqs, &q, &k, &v, &mut attn);
        let mut a = s.linear(&l.o, &attn);
        ops::add_inplace(&mut a, x);
        layer_norm_rows(&mut a, &l.attn_norm, c.norm_eps);

        let mut hidden = s.linear(&l.up, &a);
        match &l.gate {
            Some(gate) => {
                let g = s.linear(gate, &a);
                let up = std::mem::take(&mut hidden);
                hidden = vec![0f32; up.len()];
                ops::swiglu(&g, &up, &mut hidden);
            }
            None => ops::gelu_inplace(&mut hidden),
        }
        let mut out = s.linear(&l.down, &hidden);
        ops::add_inplace(&mut out, &a);
        layer_norm_rows(&mut out, &l.out_norm, c.norm_eps);
        out
    }
}

/// What one forward pass shares across its products.
struct Pass<'a> {
    pool: &'a ThreadPool,
    file: &'a GgufFile,
    /// Tokens in the pass.
    n: usize,
    mm: MatmulScratch,
}

impl Pass<'_> {
    /// `x · Wᵀ + b` for every token.
    fn linear(&mut self, l: &Linear, x: &[f32]) -> Vec<f32> {
        let mut y = vec![0f32; self.n * l.w.rows];
        matmul(self.pool, &l.w.view(self.file), x, self.n, &mut y, &mut self.mm);
        if let Some(b) = &l.b {
            for row in y.chunks_exact_mut(b.len()) {
                ops::add_inplace(row, b);
            }
        }
        y
    }
}

fn layer_norm_rows(x: &mut [f32], n: &Norm, eps: f32) {
    let mut row = vec![0f32; n.weight.len()];
    for r in x.chunks_exact_mut(n.weight.len()) {
        ops::layer_norm(r, &n.weight, &n.bias, eps, &mut row);
        r.copy_from_slice(&row);
    }
}

/// One vector from a sequence's `[len][d]` states.
fn pool_rows(states: &[f32], d: usize, pooling: Pooling) -> Vec<f32> {
    match pooling {
        Pooling::Cls => states[..d].to_vec(),
        Pooling::Last => states[states.len() - d..].to_vec(),
        Pooling::Mean => {
            let n = states.len() / d;
            let mut sum = vec![0f32; d];
            for row in states.chunks_exact(d) {
                ops::add_inplace(&mut sum, row);
            }
            ops::scale_inplace(&mut sum, 1.0 / n as f32);
            sum
        }
    }
}

fn norm(t: &TensorLoader, name: &str, d: usize) -> Result<Norm, ModelError> {
    Ok(Norm { weight: t.vector(&format!("{name}.weight"), d)?, bias: t.vector(&format!("{name}.bias"), d)? })
}

/// A bias vector when the file has one.
fn bias(t: &TensorLoader, name: &str, n: usize) -> Result<Option<Vec<f32>>, ModelError> {
    if t.has(name) {
        t.vector(name, n).map(Some)
    } else {
        Ok(None)
    }
}

fn linear(t: &TensorLoader, name: &str, rows: usize, cols: usize) -> Result<Linear, ModelError> {
    Ok(Linear { w: t.matrix(&format!("{name}.weight"), rows, cols)?, b: bias(t, &format!("{name}.bias"), rows)? })
}

fn load_layer(t: &TensorLoader, c: &EncoderConfig, il: usize) -> Result<Layer, ModelError> {
    let (d, ff) = (c.n_embd, c.n_ff);
    let n = |s: &str| format!("blk.{il}.{s}");
    // Q, K and V are separate in BERT files and fused in Nomic BERT's; either may appear.
    let (q, k, v) = if t.has(&n("attn_qkv.weight")) {
        let [wq, wk, wv]: [Weight; 3] =
            t.split_rows(&n("attn_qkv.weight"), &[d, d, d], d)?.try_into().expect("three parts were asked for");
        let [bq, bk, bv] = match bias(t, &n("attn_qkv.bias"), 3 * d)? {
            Some(b) => [Some(b[..d].to_vec()), Some(b[d..2 * d].to_vec()), Some(b[2 * d..].to_vec())],
            None => [None, None, None],
        };
        (Linear { w: wq, b: bq }, Linear { w: wk, b: bk }, Linear { w: wv, b: bv })
    } else {
        (linear(t, &n("attn_q"), d, d)?, linear(t, &n("attn_k"), d, d)?, linear(t, &n("attn_v"), d, d)?)
    };
    let gate = match c.arch {
        EncoderArch::Bert => None,
        EncoderArch::NomicBert => Some(linear(t, &n("ffn_gate"), ff, d)?),
    };
    Ok(Layer {
        q,
        k,
        v,
        o: linear(t, &n("attn_output"), d, d)?,
        attn_norm: norm(t, &n("attn_output_norm"), d)?,
        up: linear(t, &n("ffn_up"), ff, d)?,
        gate,
        down: linear(t, &n("ffn_down"), d, ff)?,
        out_norm: norm(t, &n("layer_output_norm"), d)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_takes_the_mean_the_first_or_the_last_row() {
        let states = [1.0f32, 2.0, 3.0, 4.0, 8.0, 0.0];
        assert_eq!(pool_rows(&states, 2, Pooling::Mean), [4.0, 2.0]);
        assert_eq!(pool_rows(&states, 2, Pooling::Cls), [1.0, 2.0]);
        assert_eq!(pool_rows(&states, 2, Pooling::Last), [8.0, 0.0]);
    }
}
