//! What a converted model is made of: each GGUF tensor's name, shape and where its values come
//! from (one checkpoint tensor, possibly transformed; several stacked; part of one; or values
//! computed from the config).

use kiln_gguf::{GgmlType, Value};

use crate::error::ConvertError;
use crate::safetensors::Checkpoint;

/// Which half of DeepSeek's `kv_b_proj` a tensor takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvPart {
    /// Each head's key rows, transposed: `[head][latent][nope]`.
    K,
    /// Each head's value rows: `[head][v][latent]`.
    V,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A checkpoint tensor as stored.
    Tensor(String),
    /// A q or k projection reordered from Hugging Face's rotate-half rope layout to the
    /// interleaved pairs llama.cpp's `llama` rope expects: within each of `n_head` heads, row
    /// `i` of the first half and row `i` of the second half become rows `2i` and `2i + 1`.
    RopeInterleaved { name: String, n_head: u64 },
    /// Tensors of equal shape stacked along a new outer dimension (one per expert).
    Stack(Vec<String>),
    /// DeepSeek's `kv_b_proj` (`n_head` blocks of `nope` key rows then `v` value rows) split.
    KvB { name: String, n_head: u64, nope: u64, v: u64, part: KvPart },
    /// Values computed from the config (rope factors).
    Values(Vec<f32>),
}

/// One tensor of the converted file.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTensor {
    pub name: String,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub source: Source,
}

/// Everything a conversion writes: metadata (without the tokenizer's) and tensors.
#[derive(Debug, Clone, Default)]
pub struct ModelPlan {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<PlannedTensor>,
}

impl ModelPlan {
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 = value,
            None => self.metadata.push((key, value)),
        }
    }

    pub fn push(&mut self, name: impl Into<String>, dims: Vec<u64>, source: Source) {
        self.tensors.push(PlannedTensor { name: name.into(), dims, source });
    }
}

/// PyTorch shape to ggml dimensions.
pub fn ggml_dims(shape: &[u64]) -> Vec<u64> {
    shape.iter().rev().copied().collect()
}

fn mismatch(name: &str, expected: Vec<u64>, found: &[u64]) -> ConvertError {
    ConvertError::ShapeMismatch { name: name.to_string(), expected, found: found.to_vec() }
}

impl Source {
    /// The ggml dimensions this source produces, checking the shapes it relies on.
    pub fn dims(&self, ckpt: &Checkpoint) -> Result<Vec<u64>, ConvertError> {
        match self {
            Source::Tensor(name) => Ok(ggml_dims(ckpt.shape(name)?)),
            Source::RopeInterleaved { name, n_head } => {
                let shape = ckpt.shape(name)?;
                let rows = shape.first().copied().unwrap_or(0);
                if *n_head == 0 || rows % (2 * n_head) != 0 {
                    let mut expected = shape.to_vec();
                    expected[0] = rows.next_multiple_of(2 * n_head.max(&1));
                    return Err(mismatch(name, expected, shape));
                }
                Ok(ggml_dims(shape))
            }
            Source::Stack(names) => {
                let first = ckpt.shape(&names[0])?;
                for n in &names[1..] {
                    let s = ckpt.shape(n)?;
                    if s != first {
                        return Err(mismatch(n, first.to_vec(), s));
                    }
                }
                let mut shape = vec![names.len() as u64];
                shape.extend_from_slice(first);
                Ok(ggml_dims(&shape))
            }
            Source::KvB { name, n_head, nope, v, part } => {
                let shape = ckpt.shape(name)?;
                let want_rows = n_head * (nope + v);
                if shape.len() != 2 || shape[0] != want_rows {
                    let latent = shape.get(1).copied().unwrap_or(0);
                    return Err(mismatch(name, vec![want_rows, latent], shape));
                }
                let latent = shape[1];
                Ok(match part {
                    KvPart::K => vec![*nope, latent, *n_head],
                    KvPart::V => vec![latent, *v, *n_head],
                })
            }
            Source::Values(v) => Ok(vec![v.len() as u64]),
        }
    }

    /// The type the source values are stored as (F32 for computed ones).
    pub fn stored_type(&self, ckpt: &Checkpoint) -> Result<GgmlType, ConvertError> {
        match self {
            Source::Tensor(name) | Source::RopeInterleaved { name, .. } | Source::KvB { name, .. } => {
                ckpt.stored_type(name)
            }
            Source::Stack(names) => ckpt.stored_type(&names[0]),
            Source::Values(_) => Ok(GgmlType::F32),
        }
    }

    /// The values in ggml order, as f32.
    pub fn read(&self, ckpt: &Checkpoint) -> Result<Vec<f32>, ConvertError> {
        match self {
            Source::Tensor(name) => ckpt.read_f32(name),
            Source::RopeInterleaved { name, n_head } => {
                let shape = ckpt.shape(name)?;
                let cols = shape[1..].iter().product::<u64>() as usize;
                Ok(interleave_rope_rows(&ckpt.read_f32(name)?, *n_head as usize, cols))
            }
            Source::Stack(names) => {
                let mut out = Vec::new();
                for n in names {
                    out.extend(ckpt.read_f32(n)?);
                }
                Ok(out)
            }
            Source::KvB { name, n_head, nope, v, part } => {
                let latent = ckpt.shape(name)?[1] as usize;
                Ok(split_kv_b(&ckpt.read_f32(name)?, *n_head as usize, *nope as usize, *v as usize, latent, *part))
            }
            Source::Values(v) => Ok(v.clone()),
        }
    }
}

/// Reorders the rows of a `[n_head * head_dim, cols]` matrix from rotate-half pairs (`i`,
/// `i + head_dim/2`) to adjacent pairs (`2i`, `2i + 1`) within each head.
fn interleave_rope_rows(data: &[f32], n_head: usize, cols: usize) -> Vec<f32> {
    let rows = data.len() / cols.max(1);
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..n_head {
        for i in 0..half {
            for src in [h * head_dim + i, h * head_dim + half + i] {
                out.extend_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// Splits `kv_b_proj` (`n_head` blocks of `nope` key rows then `v` value rows, each `latent`
/// long): keys transposed to `[head][latent][nope]`, values kept as `[head][v][latent]`.
fn split_kv_b(data: &[f32], n_head: usize, nope: usize, v: usize, latent: usize, part: KvPart) -> Vec<f32> {
    let block = (nope + v) * latent;
    let mut out = Vec::with_capacity(n_head * latent * if part == KvPart::K { nope } else { v });
    for h in 0..n_head {
        let head = &data[h * block..(h + 1) * block];
        match part {
            KvPart::K => {
                for l in 0..latent {
                    out.extend((0..nope).map(|r| head[r * latent + l]));
                }
            }
            KvPart::V => out.extend_from_slice(&head[nope * latent..]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rows_interleave_within_each_head() {
        // 2 heads of 4 rows, 1 column: rows are their own index.
        let data: Vec<f32> = (0..8).map(|i| i as f32).collect();
        assert_eq!(interleave_rope_rows(&data, 2, 1), [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        let wide: Vec<f32> = (0..8).map(|i| (i / 2) as f32).collect();
        assert_eq!(interleave_rope_rows(&wide, 1, 2), [0.0, 0.0, 2.0, 2.0, 1.0, 1.0, 3.0, 3.0]);
    }

    #[test]
    fn kv_b_splits_keys_transposed_and_values_as_is() {
        // 1 head, nope 2, v 1, latent 3: rows k0 k1 v0.
        let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        assert_eq!(split_kv_b(&data, 1, 2, 1, 3, KvPart::K), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(split_kv_b(&data, 1, 2, 1, 3, KvPart::V), [7.0, 8.0, 9.0]);
    }
}
