//! Log-probabilities of the chosen tokens and of their best alternatives (OpenAI's and
//! Ollama's `logprobs` / `top_logprobs`).
//!
//! They are the log-softmax of the model's raw logits for the step: before penalties,
//! logit bias, a grammar's mask, top-k/top-p and temperature, as llama.cpp's server and vLLM
//! (by default) report them. They describe the model rather than the sampler's reshaped
//! distribution, so they stay comparable across sampling settings; a chosen token that the
//! sampler alone made likely (a +100 bias, say) shows the model's low logprob for it.

use kiln_tokenizer::Tokenizer;
use std::cmp::Ordering;

/// Most alternatives a request may ask for per token, as OpenAI allows.
pub const MAX_TOP_LOGPROBS: usize = 20;

/// One token and its log-probability.
#[derive(Clone, Debug, PartialEq)]
pub struct Logprob {
    pub token: u32,
    /// The token's text as bytes: a token may hold part of a UTF-8 character.
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

/// A chosen token and the most likely tokens at its position, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub chosen: Logprob,
    pub top: Vec<Logprob>,
}

impl TokenLogprob {
    /// `token`'s log-probability under `logits` and the `top_n` most likely tokens (ties
    /// go to the lower id, as in greedy decoding). NaN logits count as impossible tokens.
    pub fn new(tok: &Tokenizer, logits: &[f32], token: u32, top_n: usize) -> TokenLogprob {
        let lse = log_sum_exp(logits);
        let entry = |id: u32| Logprob {
            token: id,
            bytes: tok.token_to_piece(id, false),
            logprob: logits.get(id as usize).map_or(f32::NEG_INFINITY, |&l| clean(l) - lse),
        };
        TokenLogprob { chosen: entry(token), top: best(logits, top_n).into_iter().map(entry).collect() }
    }
}

fn clean(logit: f32) -> f32 {
    if logit.is_nan() {
        f32::NEG_INFINITY
    } else {
        logit
    }
}

/// `ln Σ exp(l)`, shifted by the maximum so that large logits do not overflow.
fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().map(clean).fold(f32::NEG_INFINITY, f32::max);
    if max.is_infinite() {
        return max;
    }
    let sum: f64 = logits.iter().map(|&l| f64::from(clean(l) - max).exp()).sum();
    max + sum.ln() as f32
}

/// Ids of the `n` largest logits, best first.
fn best(logits: &[f32], n: usize) -> Vec<u32> {
    let n = n.min(logits.len());
    if n == 0 {
        return Vec::new();
    }
    let by_rank = |a: &u32, b: &u32| {
        let (la, lb) = (clean(logits[*a as usize]), clean(logits[*b as usize]));
        lb.partial_cmp(&la).unwrap_or(Ordering::Equal).then(a.cmp(b))
    };
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    ids.select_nth_unstable_by(n - 1, by_rank);
    ids.truncate(n);
    ids.sort_unstable_by(by_rank);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_matches_the_direct_sum_and_survives_large_logits() {
        let logits = [1.0f32, 2.0, 3.0];
        let direct = logits.iter().map(|l| l.exp()).sum::<f32>().ln();
        assert!((log_sum_exp(&logits) - direct).abs() < 1e-6);
        // exp(1000) overflows f32; shifting by the maximum does not.
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f32.ln())).abs() < 1e-3);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY, f32::NAN]), f32::NEG_INFINITY);
    }

    #[test]
    fn best_ranks_by_logit_then_id_and_ignores_nan() {
        let logits = [0.5, f32::NAN, 2.0, 0.5, 3.0];
        assert_eq!(best(&logits, 3), [4, 2, 0]);
        assert_eq!(best(&logits, 4), [4, 2, 0, 3]);
        assert_eq!(best(&logits, 99), [4, 2, 0, 3, 1]);
        assert!(best(&logits, 0).is_empty());
    }
}
