//! Full (non-causal) attention of each sequence over all of its own tokens, in f32, for
//! encoder models: every token of an input sees every other, and sequences never see each
//! other. Nothing is cached, so queries, keys and values are plain contiguous rows.

use crate::attention::{softmax_inplace, SyncPtr};
use crate::vec::{self, MatShape};
use crate::ThreadPool;
use std::ops::Range;

/// Shape of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct BidirectionalParams {
    pub n_heads: usize,
    pub head_dim: usize,
    /// Multiplies the scores q·k.
    pub scale: f32,
}

/// `out` = softmax(q·kᵀ·scale)·v per sequence and head. `q`, `k`, `v` and `out` are
/// `[n_tokens][n_heads·head_dim]`; `seqs` are the token ranges of the sequences.
pub fn bidirectional_attention(
    pool: &ThreadPool,
    p: &BidirectionalParams,
    seqs: &[Range<usize>],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
) {
    let (hd, row) = (p.head_dim, p.n_heads * p.head_dim);
    let n_tokens = seqs.iter().map(|s| s.end).max().unwrap_or(0);
    assert!(q.len() >= n_tokens * row && k.len() >= n_tokens * row && v.len() >= n_tokens * row);
    assert!(out.len() >= n_tokens * row);
    let out_ptr = SyncPtr(out.as_mut_ptr());
    // One task per (sequence, head): its rows are gathered into contiguous matrices so the
    // scores and the weighted sum are two small matrix products.
    pool.run(seqs.len() * p.n_heads, |task| {
        let (seq, h) = (&seqs[task / p.n_heads], task % p.n_heads);
        let n = seq.len();
        let gather = |src: &[f32]| -> Vec<f32> {
            seq.clone().flat_map(|t| src[t * row + h * hd..t * row + (h + 1) * hd].iter().copied()).collect()
        };
        let (qh, kh, vh) = (gather(q), gather(k), gather(v));
        let mut scores = vec![0f32; n * n];
        vec::gemm_nt(&MatShape { rows: n, inner: hd, cols: n }, &qh, &kh, &mut scores);
        for r in scores.chunks_exact_mut(n) {
            vec::scale(r, p.scale);
            softmax_inplace(r);
        }
        let mut acc = vec![0f32; n * hd];
        vec::gemm_nn_acc(&MatShape { rows: n, inner: n, cols: hd }, &scores, &vh, &mut acc);
        for (i, t) in seq.clone().enumerate() {
            // SAFETY: each (token, head) slice of `out` is written by exactly one task, and
            // lies inside `out` (checked above).
            let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(t * row + h * hd), hd) };
            dst.copy_from_slice(&acc[i * hd..(i + 1) * hd]);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written out term by term for one sequence and head.
    fn reference(q: &[f32], k: &[f32], v: &[f32], seq: Range<usize>, h: usize, p: &BidirectionalParams) -> Vec<f32> {
        let (hd, row) = (p.head_dim, p.n_heads * p.head_dim);
        let at = |m: &[f32], t: usize| m[t * row + h * hd..t * row + (h + 1) * hd].to_vec();
        let mut out = Vec::new();
        for i in seq.clone() {
            let qi = at(q, i);
            let s: Vec<f64> = seq
                .clone()
                .map(|j| qi.iter().zip(at(k, j)).map(|(a, b)| (a * b) as f64).sum::<f64>() * p.scale as f64)
                .collect();
            let max = s.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
            let z: f64 = e.iter().sum();
            let mut o = vec![0f64; hd];
            for (w, j) in e.iter().zip(seq.clone()) {
                for (oi, vj) in o.iter_mut().zip(at(v, j)) {
                    *oi += w / z * vj as f64;
                }
            }
            out.extend(o.iter().map(|&x| x as f32));
        }
        out
    }

    #[test]
    fn each_sequence_attends_to_all_of_itself_and_nothing_else() {
        let p = BidirectionalParams { n_heads: 2, head_dim: 4, scale: 0.5 };
        let row = 8;
        let seqs = [0..3, 3..8];
        let val = |i: usize, s: f32| ((i as f32) * s).sin();
        let q: Vec<f32> = (0..8 * row).map(|i| val(i, 0.37)).collect();
        let k: Vec<f32> = (0..8 * row).map(|i| val(i, 0.91)).collect();
        let v: Vec<f32> = (0..8 * row).map(|i| val(i, 1.3)).collect();
        let mut out = vec![0f32; 8 * row];
        bidirectional_attention(&ThreadPool::new(2), &p, &seqs, &q, &k, &v, &mut out);
        for seq in &seqs {
            for h in 0..2 {
                let want = reference(&q, &k, &v, seq.clone(), h, &p);
                for (i, t) in seq.clone().enumerate() {
                    let got = &out[t * row + h * 4..t * row + h * 4 + 4];
                    for (a, b) in got.iter().zip(&want[i * 4..i * 4 + 4]) {
                        assert!((a - b).abs() < 1e-5, "token {t} head {h}: {a} vs {b}");
                    }
                }
            }
        }
    }
}
