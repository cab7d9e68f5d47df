//! Mixture-of-experts feed-forward blocks (Mixtral, Qwen 2 MoE, Qwen 3 MoE, DeepSeek V2/V3): a
//! router scores the experts for each token, the token goes through its top-k experts, and their
//! outputs are summed with the router's weights. Tokens routed to the same expert are gathered and
//! multiplied together, one matrix product per expert per step, so an expert's weights are
//! read once however many tokens chose it.

use crate::config::{ExpertScoring, ModelConfig, MoeConfig};
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
    /// The expert every token goes through, scaled by sigmoid(`shared_gate · x`) when it has a
    /// gate (Qwen 2 MoE) or added as is (DeepSeek).
    shared: Option<(FfnWeights, Option<Vec<f32>>)>,
    /// Added to the scores only to choose the experts (DeepSeek V3's `exp_probs_b`).
    choice_bias: Option<Vec<f32>>,
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
    routing: Routing,
}

/// One token's routing: its buffers and, after [`route`], its choice.
#[derive(Default)]
pub struct Routing {
    /// Score of each expert (softmax or sigmoid of the router's logits).
    probs: Vec<f32>,
    /// What the experts are chosen by: the scores plus the choice bias, outside the kept
    /// groups -inf.
    selection: Vec<f32>,
    /// Rating of each expert group.
    groups: Vec<f32>,
    /// The chosen experts and their weights.
    pub chosen: Vec<(usize, f32)>,
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
                let gate = if moe.shared_gated {
                    // Stored as a 1 × n_embd matrix: one gate score per token.
                    let gate = t.matrix(&n("ffn_gate_inp_shexp"), 1, d)?;
                    let mut row = vec![0f32; d];
                    gate.view(t.file()).dequantize_row(0, &mut row);
                    Some(row)
                } else {
                    None
                };
                Some((ffn, gate))
            }
            None => None,
        };
        Ok(MoeWeights {
            router: t.matrix(&n("ffn_gate_inp"), e, d)?,
            gate: t.matrices(&n("ffn_gate_exps"), e, f, d)?,
            up: t.matrices(&n("ffn_up_exps"), e, f, d)?,
            down: t.matrices(&n("ffn_down_exps"), e, d, f)?,
            shared,
            choice_bias: if t.has(&format!("blk.{il}.exp_probs_b.bias")) {
                Some(t.vector(&format!("blk.{il}.exp_probs_b.bias"), e)?)
            } else {
                None
            },
            cfg: moe,
        })
    }
}

/// The experts chosen for one token's router `logits` and their weights, into `r.chosen`, as
/// llama.cpp's MoE block does:
/// 1. scores: softmax or sigmoid of the logits;
/// 2. choice values: the scores plus `bias` (DeepSeek V3), which only decides the choice;
/// 3. with expert groups, each group is rated by the sum of its best two choice values and
///    only the best `n_group_used` groups stay eligible (llama.cpp rates every model's groups
///    this way; DeepSeek V2 itself rates a group by its best expert);
/// 4. the `n_used` best choice values win (ties to the lower index);
/// 5. their weights are their scores, optionally renormalised to sum to one, times
///    `weights_scale`.
///
/// Allocates nothing once `r` is warm: it runs for every token of every MoE layer.
pub fn route(cfg: &MoeConfig, logits: &[f32], bias: Option<&[f32]>, r: &mut Routing) {
    r.probs.clear();
    match cfg.scoring {
        ExpertScoring::Softmax => {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f32 = logits.iter().map(|l| (l - max).exp()).sum();
            r.probs.extend(logits.iter().map(|l| (l - max).exp() / total));
        }
        ExpertScoring::Sigmoid => r.probs.extend(logits.iter().map(|l| 1.0 / (1.0 + (-l).exp()))),
    }
    r.selection.clear();
    r.selection.extend_from_slice(&r.probs);
    if let Some(bias) = bias {
        ops::add_inplace(&mut r.selection, bias);
    }
    if cfg.n_group > 1 {
        keep_best_groups(cfg, &mut r.selection, &mut r.groups);
    }
    r.chosen.clear();
    // k is a handful: repeated scans beat sorting all the experts.
    for _ in 0..cfg.n_used.min(logits.len()) {
        let mut best: Option<usize> = None;
        for (e, &s) in r.selection.iter().enumerate() {
            if s > f32::NEG_INFINITY && !r.chosen.iter().any(|c| c.0 == e) && best.is_none_or(|b| s > r.selection[b]) {
                best = Some(e);
            }
        }
        if let Some(e) = best {
            r.chosen.push((e, r.probs[e]));
        }
    }
    let norm = if cfg.normalize_top_k { r.chosen.iter().map(|c| c.1).sum() } else { 1.0 };
    for c in r.chosen.iter_mut() {
        c.1 = c.1 / norm * cfg.weights_scale;
    }
}

/// Rates each of `cfg.n_group` consecutive groups of `selection` by the sum of its best two
/// values and sets every value outside the `cfg.n_group_used` best groups to -inf.
fn keep_best_groups(cfg: &MoeConfig, selection: &mut [f32], ratings: &mut Vec<f32>) {
    let size = selection.len() / cfg.n_group;
    ratings.clear();
    for group in selection.chunks_exact(size) {
        let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for &v in group {
            if v > first {
                (first, second) = (v, first);
            } else if v > second {
                second = v;
            }
        }
        ratings.push(if size > 1 { first + second } else { first });
    }
    // Drop the worst groups one at a time (ties: the higher index goes first), down to n_group_used.
    for _ in cfg.n_group_used..cfg.n_group {
        let mut worst: Option<usize> = None;
        for (g, &v) in ratings.iter().enumerate() {
            if !v.is_nan() && worst.is_none_or(|w| v <= ratings[w]) {
                worst = Some(g);
            }
        }
        if let Some(g) = worst {
            ratings[g] = f32::NAN;
            selection[g * size..(g + 1) * size].fill(f32::NEG_INFINITY);
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
        route(&w.cfg, scores, w.choice_bias.as_deref(), &mut m.routing);
        for &(e, weight) in &m.routing.chosen {
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
            let scale = match gate {
                Some(gate) => {
                    let logit: f32 = s.h[t * d..(t + 1) * d].iter().zip(gate).map(|(a, b)| a * b).sum();
                    1.0 / (1.0 + (-logit).exp())
                }
                None => 1.0,
            };
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

    /// Softmax top-k without groups, as Mixtral and the Qwen MoE families route.
    fn plain(n_used: usize, normalize_top_k: bool) -> MoeConfig {
        MoeConfig {
            n_expert: 4,
            n_used,
            n_ff_expert: 8,
            n_ff_shared: None,
            normalize_top_k,
            scoring: ExpertScoring::Softmax,
            n_group: 1,
            n_group_used: 1,
            weights_scale: 1.0,
            shared_gated: true,
            n_dense_lead: 0,
        }
    }

    fn pick(cfg: &MoeConfig, logits: &[f32], bias: Option<&[f32]>) -> Vec<(usize, f32)> {
        let mut r = Routing::default();
        route(cfg, logits, bias, &mut r);
        r.chosen
    }

    #[test]
    fn routing_takes_the_top_k_by_softmax() {
        let logits = [0.0, 2.0, 1.0, 2.0];
        let chosen = pick(&plain(2, false), &logits, None);
        // Experts 1 and 3 tie for first; the lower index comes first.
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), [1, 3]);
        let total: f32 = logits.iter().map(|s: &f32| s.exp()).sum();
        assert!((chosen[0].1 - 2f32.exp() / total).abs() < 1e-6);
        let normalized = pick(&plain(2, true), &logits, None);
        assert!((normalized[0].1 - 0.5).abs() < 1e-6 && (normalized[1].1 - 0.5).abs() < 1e-6);
        assert_eq!(pick(&plain(1, true), &logits, None), [(1, 1.0)]);
    }

    /// DeepSeek V3: sigmoid scores, a choice bias, 2 groups of 2 with 1 kept, top 2 renormalised
    /// and scaled by 2.5.
    #[test]
    fn grouped_sigmoid_routing_chooses_with_the_bias_and_weighs_without_it() {
        let cfg = MoeConfig {
            scoring: ExpertScoring::Sigmoid,
            normalize_top_k: true,
            n_group: 2,
            n_group_used: 1,
            weights_scale: 2.5,
            ..plain(2, true)
        };
        let logits = [2.0, -1.0, 1.0, 0.5];
        let sig = |l: f32| 1.0 / (1.0 + (-l).exp());
        // Unbiased, group 0 rates 0.881 + 0.269 = 1.150 and group 1 0.731 + 0.622 = 1.354.
        let chosen = pick(&cfg, &logits, None);
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), [2, 3]);
        let sum = sig(1.0) + sig(0.5);
        assert!((chosen[0].1 - 2.5 * sig(1.0) / sum).abs() < 1e-6);
        // A bias on expert 1 lifts group 0 (1.150 + 0.3 > 1.354); the weights stay the
        // unbiased scores.
        let chosen = pick(&cfg, &logits, Some(&[0.0, 0.3, 0.0, 0.0]));
        assert_eq!(chosen.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1]);
        let sum = sig(2.0) + sig(-1.0);
        assert!((chosen[1].1 - 2.5 * sig(-1.0) / sum).abs() < 1e-6);
    }

    /// DeepSeek V2: softmax scores, groups, weights not renormalised but scaled.
    #[test]
    fn grouped_softmax_routing_scales_unnormalised_weights() {
        let cfg = MoeConfig { n_group: 2, n_group_used: 1, weights_scale: 1.5, ..plain(1, false) };
        // Expert 0 has the best score, but group 1 (experts 2, 3) rates higher as a pair.
        let logits = [3.0, -3.0, 2.5, 2.5];
        let chosen = pick(&cfg, &logits, None);
        let total: f32 = logits.iter().map(|s: &f32| s.exp()).sum();
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].0, 2);
        assert!((chosen[0].1 - 1.5 * 2.5f32.exp() / total).abs() < 1e-6);
    }
}
