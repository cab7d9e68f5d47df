//! Mixture-of-experts feed-forward blocks (Qwen 2 MoE, Qwen 3 MoE): a router scores the
//! experts for each token, the token goes through its top-k experts, and their outputs are
//! summed with the router's weights. Tokens routed to the same expert are gathered and
//! multiplied together, one matrix product per expert per step, so an expert's weights are
//! read once however many tokens chose it.

use crate::config::{ModelConfig, MoeConfig};
use crate::decoder::{feed_forward, FfnWeights, Gating, Scratch, StepCtx};
use crate::weights::{TensorLoader, Weight};
use crate::ModelError;
use kiln_kernels::ops;

pub struct MoeWeights {
    /// `[n_expert][n_embd]`: one score per expert.
    router: Weight,
    gate: Vec<Weight>,
    up: Vec<Weight>,
    down: Vec<Weight>,
    /// The expert every token goes through, scaled by sigmoid(`shared_gate · x`) (Qwen 2 MoE).
    shared: Option<(FfnWeights, Vec<f32>)>,
    cfg: MoeConfig,
}

/// Per-step buffers of the experts, kept between steps.
#[derive(Default)]
pub struct MoeScratch {
    scores: Vec<f32>,
    /// Rows of `h` routed to the current expert, and their results.
    rows: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    act: Vec<f32>,
    result: Vec<f32>,
    /// Output being summed `[n_tokens][n_embd]`.
    sum: Vec<f32>,
    /// Per expert: the (token, weight) pairs routed to it this step.
    routed: Vec<Vec<(usize, f32)>>,
    /// One token's choice.
    chosen: Vec<(usize, f32)>,
}

impl MoeWeights {
    pub fn load(t: &TensorLoader, cfg: &ModelConfig, moe: MoeConfig, il: usize) -> Result<MoeWeights, ModelError> {
        let d = cfg.n_embd;
        let n = |s: &str| format!("blk.{il}.{s}.weight");
        let (e, f) = (moe.n_expert, moe.n_ff_expert);
        let shared = match moe.n_ff_shared {
            Some(fs) => {
                let ffn = FfnWeights {
                    gate: t.matrix(&n("ffn_gate_shexp"), fs, d)?,
                    up: t.matrix(&n("ffn_up_shexp"), fs, d)?,
                    down: t.matrix(&n("ffn_down_shexp"), d, fs)?,
                };
                // Stored as a 1 × n_embd matrix: one gate score per token.
                let gate = t.matrix(&n("ffn_gate_inp_shexp"), 1, d)?;
                let mut row = vec![0f32; d];
                gate.view(t.file()).dequantize_row(0, &mut row);
                Some((ffn, row))
            }
            None => None,
        };
        Ok(MoeWeights {
            router: t.matrix(&n("ffn_gate_inp"), e, d)?,
            gate: t.matrices(&n("ffn_gate_exps"), e, f, d)?,
            up: t.matrices(&n("ffn_up_exps"), e, f, d)?,
            down: t.matrices(&n("ffn_down_exps"), e, d, f)?,
            shared,
            cfg: moe,
        })
    }
}

/// The experts chosen for one token's router scores and their weights, into `chosen`:
/// softmax over all experts, the `k` most probable (ties to the lower index), their
/// probabilities optionally renormalised to sum to one. Allocates nothing: it runs for every
/// token of every MoE layer.
pub fn route(scores: &[f32], k: usize, normalize: bool, chosen: &mut Vec<(usize, f32)>) {
    chosen.clear();
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = scores.iter().map(|s| (s - max).exp()).sum();
    // k is a handful: repeated scans beat sorting all the experts.
    for _ in 0..k.min(scores.len()) {
        let mut best: Option<usize> = None;
        for (e, &s) in scores.iter().enumerate() {
            if !chosen.iter().any(|c| c.0 == e) && best.is_none_or(|b| s > scores[b]) {
                best = Some(e);
            }
        }
        if let Some(e) = best {
            chosen.push((e, (scores[e] - max).exp() / total));
        }
    }
    if normalize {
        let sum: f32 = chosen.iter().map(|c| c.1).sum();
        for c in chosen.iter_mut() {
            c.1 /= sum;
        }
    }
}

/// The MoE block: `s.h` (normalised input) → `s.out`.
pub fn moe_forward(ctx: &StepCtx, w: &MoeWeights, s: &mut Scratch, m: &mut MoeScratch) {
    let n_tokens = ctx.n_tokens();
    let d = w.router.cols;
    ctx.linear(&w.router, &s.h, &mut m.scores, &mut s.mm);
    m.routed.resize_with(w.cfg.n_expert, Vec::new);
    m.routed.iter_mut().for_each(Vec::clear);
    for (t, scores) in m.scores.chunks_exact(w.cfg.n_expert).enumerate() {
        route(scores, w.cfg.n_used, w.cfg.normalize_top_k, &mut m.chosen);
        for &(e, weight) in &m.chosen {
            m.routed[e].push((t, weight));
        }
    }
    let routed = std::mem::take(&mut m.routed);
    m.sum.clear();
    m.sum.resize(n_tokens * d, 0.0);
    for (e, tokens) in routed.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
        m.rows.clear();
        for &(t, _) in tokens {
            m.rows.extend_from_slice(&s.h[t * d..(t + 1) * d]);
        }
        let rows = tokens.len();
        ctx.linear_rows(&w.gate[e], &m.rows, rows, &mut m.gate, &mut s.mm);
        ctx.linear_rows(&w.up[e], &m.rows, rows, &mut m.up, &mut s.mm);
        m.act.resize(m.gate.len(), 0.0);
        ops::swiglu(&m.gate, &m.up, &mut m.act);
        ctx.linear_rows(&w.down[e], &m.act, rows, &mut m.result, &mut s.mm);
        for (i, &(t, weight)) in tokens.iter().enumerate() {
            for (o, r) in m.sum[t * d..(t + 1) * d].iter_mut().zip(&m.result[i * d..(i + 1) * d]) {
                *o += weight * r;
            }
        }
    }
    if let Some((ffn, gate)) = &w.shared {
        feed_forward(ctx, ffn, Gating::Silu, s);
        for t in 0..n_tokens {
            let logit: f32 = s.h[t * d..(t + 1) * d].iter().zip(gate).map(|(a, b)| a * b).sum();
            let scale = 1.0 / (1.0 + (-logit).exp());
            for (o, r) in m.sum[t * d..(t + 1) * d].iter_mut().zip(&s.out[t * d..(t + 1) * d]) {
                *o += scale * r;
            }
        }
    }
    m.routed = routed;
    std::mem::swap(&mut s.out, &mut m.sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_takes_the_top_k_by_softmax() {
        let scores = [0.0, 2.0, 1.0, 2.0];
        let pick = |k, normalize| {
            let mut v = Vec::new();
            route(&scores, k, normalize, &mut v);
            v
        };
        let chosen = pick(2, false);
        // Experts 1 and 3 tie for first; the lower index comes first.
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 3]);
        let total: f32 = scores.iter().map(|s: &f32| s.exp()).sum();
        assert!((chosen[0].1 - 2f32.exp() / total).abs() < 1e-6);
        let normalized = pick(2, true);
        assert!((normalized[0].1 - 0.5).abs() < 1e-6 && (normalized[1].1 - 0.5).abs() < 1e-6);
        assert_eq!(pick(1, true), [(1, 1.0)]);
    }
}
