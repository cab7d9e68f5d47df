//! Token sampling: turns one row of logits into the next token id.
//!
//! The knobs are named after Ollama's options (and default to Ollama's values), but the
//! chain follows llama.cpp's default sampler order (`common/sampling.cpp`), restricted to the
//! samplers Kiln implements:
//!
//! ```text
//! penalties → top_k → top_p → min_p → temperature → softmax → draw
//! ```
//!
//! with `temperature == 0` short-circuiting to argmax right after the penalties.
//!
//! Ollama's own Go sampler runs `top_k → temperature → softmax → top_p → min_p` instead, so
//! its top_p/min_p see *tempered* probabilities. We follow llama.cpp, the reference
//! implementation for GGUF models, and because filtering on untempered probabilities makes
//! the candidate set independent of temperature: raising the temperature flattens the
//! distribution over the same plausible tokens rather than letting more of the tail in.
//!
//! Cost per token for a 262k vocabulary: greedy is a max pass plus a position pass; top_k is
//! one pass with a bounded heap; top_p sorts only a prefix, so it is cheap when top_k is set
//! or the distribution is peaked, and approaches a full sort for a flat distribution with
//! top_k off (as in llama.cpp).
//!
//! Stop strings are matched by [`StopMatcher`].

mod bias;
mod stop;

pub use bias::MAX_BIAS;
pub use stop::{StopMatcher, StopOutcome};

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Sampling options, named and defaulted like Ollama's.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0` means greedy (argmax, ties go to the lowest token id).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` turns the filter off.
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest prefix of the ranked tokens whose probability
    /// mass reaches `top_p`; `1.0` turns the filter off.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the top token's; `0.0` is off.
    pub min_p: f32,
    /// llama.cpp-style repetition penalty for tokens in the last `repeat_last_n`: positive
    /// logits are divided by it, non-positive ones multiplied, so it always makes a repeat
    /// less likely. `1.0` is off.
    pub repeat_penalty: f32,
    /// How many of the most recent tokens all penalties look at; `0` turns penalties off
    /// and [`SamplingParams::WHOLE_HISTORY`] (Ollama's `-1`) uses the whole history.
    pub repeat_last_n: usize,
    /// OpenAI-style: subtracted once from the logit of every token that occurs in the window.
    pub presence_penalty: f32,
    /// OpenAI-style: subtracted from a token's logit once per occurrence in the window.
    pub frequency_penalty: f32,
    /// Fixes the random stream: the same seed and inputs give the same tokens. `None` seeds
    /// from the clock.
    pub seed: Option<u64>,
    /// OpenAI-style offsets for token ids' logits, applied before everything else; a bias of
    /// `-MAX_BIAS` bans the token.
    pub logit_bias: Vec<(u32, f32)>,
}

impl SamplingParams {
    /// `repeat_last_n` value that makes penalties consider the whole history, which is what
    /// Ollama's `repeat_last_n = -1` ("the context size") amounts to when the caller passes
    /// the context as history.
    pub const WHOLE_HISTORY: usize = usize::MAX;

    /// Deterministic argmax decoding with no penalties.
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, repeat_penalty: 1.0, ..SamplingParams::default() }
    }

    /// Rejects values that have no sensible meaning (NaN, negative temperature, a top_p
    /// that would keep nothing, ...) instead of silently sampling garbage.
    pub fn validate(&self) -> Result<(), SamplingError> {
        let check = |name, value: f32, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(SamplingError::InvalidParameter { name, value, expected })
            }
        };
        let t = self.temperature;
        check("temperature", t, t.is_finite() && t >= 0.0, "a finite number >= 0 (0 = greedy)")?;
        let p = self.top_p;
        check("top_p", p, p > 0.0 && p <= 1.0, "a number in (0, 1] (1 = off)")?;
        let m = self.min_p;
        check("min_p", m, (0.0..=1.0).contains(&m), "a number in [0, 1] (0 = off)")?;
        let r = self.repeat_penalty;
        check("repeat_penalty", r, r.is_finite() && r > 0.0, "a finite number > 0 (1 = off)")?;
        for (name, value) in
            [("presence_penalty", self.presence_penalty), ("frequency_penalty", self.frequency_penalty)]
        {
            check(name, value, value.is_finite(), "a finite number (0 = off)")?;
        }
        for &(_, b) in &self.logit_bias {
            check("logit_bias", b, (-MAX_BIAS..=MAX_BIAS).contains(&b), "a number in [-100, 100]")?;
        }
        Ok(())
    }

    fn penalties_enabled(&self) -> bool {
        self.repeat_last_n > 0
            && (self.repeat_penalty != 1.0 || self.presence_penalty != 0.0 || self.frequency_penalty != 0.0)
    }
}

impl Default for SamplingParams {
    /// Ollama's defaults.
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
            logit_bias: Vec::new(),
        }
    }
}

/// A sampling parameter outside its meaningful range.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SamplingError {
    #[error("invalid sampling parameter {name} = {value}: expected {expected}")]
    InvalidParameter { name: &'static str, value: f32, expected: &'static str },
    #[error("invalid token id {token} in logit_bias: the vocabulary has {vocab} tokens")]
    UnknownToken { token: u32, vocab: usize },
}

/// A token still in the running, with its (possibly penalised and tempered) logit and, once
/// the chain has run, its probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub id: u32,
    pub logit: f32,
    pub p: f32,
}

/// Picks tokens from logits according to [`SamplingParams`].
///
/// Holds scratch buffers so that sampling a 262k-entry vocabulary does not allocate per
/// token, and its own random stream so that a seeded sampler is reproducible regardless of
/// what else the process does.
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
    logits: Vec<f32>,
    candidates: Vec<Candidate>,
    window: Vec<u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Sampler, SamplingError> {
        params.validate()?;
        let rng = match params.seed {
            Some(seed) => Rng::seeded(seed),
            None => Rng::from_clock(),
        };
        Ok(Sampler { params, rng, logits: Vec::new(), candidates: Vec::new(), window: Vec::new() })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token from raw logits (one per vocabulary entry), given the tokens
    /// seen so far (for the penalties, which look at the last `repeat_last_n` of them).
    ///
    /// Never modifies `logits` and never panics on odd input: NaN logits count as `-inf`,
    /// history ids outside the vocabulary are ignored, and an empty row yields token 0.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        self.sample_masked(logits, history, None)
    }

    /// [`Sampler::sample`] among the tokens `allowed` allows (a constraint's mask) when given.
    pub fn sample_masked(&mut self, logits: &[f32], history: &[u32], allowed: Option<TokenMask>) -> u32 {
        let greedy = self.params.temperature == 0.0;
        let u = if greedy { 0.0 } else { self.rng.next_f64() };
        let candidates = self.candidates_masked(logits, history, allowed);
        draw(candidates, u).unwrap_or(0)
    }

    /// Runs the chain up to (not including) the draw and returns the surviving tokens with
    /// their final probabilities. Greedy decoding yields the single argmax token with p = 1.
    ///
    /// Useful on its own for reporting alternatives (log-probabilities).
    pub fn candidates(&mut self, logits: &[f32], history: &[u32]) -> &[Candidate] {
        self.candidates_masked(logits, history, None)
    }

    /// [`Sampler::candidates`] among the tokens `allowed` allows. The mask comes first, so
    /// penalties, top-k and top-p only ever rank tokens the constraint permits.
    pub fn candidates_masked(&mut self, logits: &[f32], history: &[u32], allowed: Option<TokenMask>) -> &[Candidate] {
        let logits = if allowed.is_some() || self.params.penalties_enabled() || !self.params.logit_bias.is_empty() {
            self.logits.clear();
            self.logits.extend_from_slice(logits);
            if let Some(mask) = allowed {
                mask.apply(&mut self.logits);
            }
            bias::apply(&mut self.logits, &self.params.logit_bias);
            apply_penalties(&mut self.logits, history, &self.params, &mut self.window);
            &self.logits[..]
        } else {
            logits
        };

        let cands = &mut self.candidates;
        cands.clear();
        if self.params.temperature == 0.0 {
            if let Some(id) = argmax(logits) {
                cands.push(Candidate { p: 1.0, ..candidate(id, logits[id]) });
            }
            return cands;
        }

        top_k(logits, self.params.top_k, cands);
        top_p(cands, self.params.top_p);
        min_p(cands, self.params.min_p);
        for c in cands.iter_mut() {
            c.logit /= self.params.temperature;
        }
        softmax(cands);
        cands
    }
}

/// The tokens a constraint allows: bit `id % 32` of word `id / 32` is set for an allowed
/// token; ids past the last word are not allowed.
#[derive(Clone, Copy, Debug)]
pub struct TokenMask<'a>(pub &'a [u32]);

impl TokenMask<'_> {
    /// Gives every token the mask does not allow a logit of `-inf`.
    fn apply(self, logits: &mut [f32]) {
        for (i, chunk) in logits.chunks_mut(32).enumerate() {
            match self.0.get(i) {
                Some(&u32::MAX) => {}
                Some(&word) => {
                    for (bit, logit) in chunk.iter_mut().enumerate() {
                        if word & (1 << bit) == 0 {
                            *logit = f32::NEG_INFINITY;
                        }
                    }
                }
                None => chunk.fill(f32::NEG_INFINITY),
            }
        }
    }
}

/// Ranking used everywhere candidates are ordered: higher logit first, then lower id, so
/// that ties resolve the same way in greedy decoding, top-k cut-offs and top-p prefixes.
fn rank(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.partial_cmp(&a.logit).unwrap_or(Ordering::Equal).then(a.id.cmp(&b.id))
}

/// Index of the largest value, lowest index on ties, NaN never winning (an all-NaN row gives
/// 0); `None` for an empty slice. Finding the maximum first and then its first position keeps
/// both passes branch-light, so greedy decoding costs little more than reading the logits.
fn argmax(values: &[f32]) -> Option<usize> {
    let max = values.iter().copied().fold(f32::NAN, f32::max);
    if values.is_empty() {
        None
    } else {
        Some(values.iter().position(|&v| v == max).unwrap_or(0))
    }
}

/// Candidates see NaN logits as impossible tokens, so that one bad value cannot poison the
/// softmax or the ordering.
fn candidate(id: usize, logit: f32) -> Candidate {
    Candidate { id: id as u32, logit: if logit.is_nan() { f32::NEG_INFINITY } else { logit }, p: 0.0 }
}

/// Applies the repetition, presence and frequency penalties in place, the way llama.cpp's
/// penalties sampler does: all three count occurrences within the last `repeat_last_n`
/// tokens of `history`. `scratch` is reused to count occurrences without a hash map.
fn apply_penalties(logits: &mut [f32], history: &[u32], params: &SamplingParams, scratch: &mut Vec<u32>) {
    if !params.penalties_enabled() {
        return;
    }
    let start = history.len().saturating_sub(params.repeat_last_n);
    scratch.clear();
    scratch.extend_from_slice(&history[start..]);
    scratch.sort_unstable();
    for run in scratch.chunk_by(|a, b| a == b) {
        if let Some(logit) = logits.get_mut(run[0] as usize) {
            *logit = penalize(*logit, run.len(), params);
        }
    }
}

/// One token's penalised logit, given how often it occurs in the penalty window.
fn penalize(logit: f32, count: usize, params: &SamplingParams) -> f32 {
    // Dividing a negative logit would make the token *more* likely; multiplying it instead
    // is the usual fix (and llama.cpp's).
    let repeated = if logit > 0.0 { logit / params.repeat_penalty } else { logit * params.repeat_penalty };
    repeated - count as f32 * params.frequency_penalty - params.presence_penalty
}

/// Makes `cands[..k]` the `k` best candidates in rank order, in O(n + k log k).
fn sort_prefix(cands: &mut [Candidate], k: usize) {
    if k < cands.len() {
        if k == 0 {
            return;
        }
        cands.select_nth_unstable_by(k - 1, rank);
        cands[..k].sort_unstable_by(rank);
    } else {
        cands.sort_unstable_by(rank);
    }
}

/// Fills `out` with the `k` best tokens of `logits`, sorted; with `k == 0` (off) or `k` at
/// least the vocabulary size, with every token, unsorted.
///
/// A bounded heap keeps this a single pass over the vocabulary: once it holds `k` tokens, a
/// token only costs one comparison against the worst of them, and few get past it.
fn top_k(logits: &[f32], k: usize, out: &mut Vec<Candidate>) {
    out.clear();
    if k == 0 || k >= logits.len() {
        out.extend(logits.iter().enumerate().map(|(id, &logit)| candidate(id, logit)));
        return;
    }
    // Max-heap under `rank`, so the top is the worst candidate kept so far.
    let mut heap = BinaryHeap::from(std::mem::take(out).into_iter().map(Ranked).collect::<Vec<_>>());
    heap.extend(logits[..k].iter().enumerate().map(|(id, &logit)| Ranked(candidate(id, logit))));
    let mut threshold = heap.peek().map_or(f32::NEG_INFINITY, |worst| worst.0.logit);
    for (id, &logit) in logits.iter().enumerate().skip(k) {
        // Ids arrive in increasing order, so an equal logit ranks below the worst kept and
        // only a strictly larger one gets in (NaN never does).
        if logit > threshold {
            if let Some(mut worst) = heap.peek_mut() {
                *worst = Ranked(candidate(id, logit));
            }
            threshold = heap.peek().map_or(f32::NEG_INFINITY, |worst| worst.0.logit);
        }
    }
    *out = heap.into_sorted_vec().into_iter().map(|r| r.0).collect();
}

/// A candidate ordered by [`rank`], for the top-k heap.
struct Ranked(Candidate);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        rank(&self.0, &other.0)
    }
}

/// How many of the best candidates top-p sorts first. The nucleus of a real model's
/// distribution almost always fits (llama.cpp uses the same first guess); when it does not,
/// the sorted prefix grows geometrically instead of sorting the whole vocabulary at once.
const TOP_P_FIRST_PASS: usize = 256;

/// Keeps the smallest rank-ordered prefix whose probability (softmax of the current logits)
/// reaches `p`, including the token that crosses it; the result is sorted.
fn top_p(cands: &mut Vec<Candidate>, p: f32) {
    if p >= 1.0 || cands.is_empty() {
        return;
    }
    softmax(cands);
    let mut sorted = TOP_P_FIRST_PASS.min(cands.len());
    sort_prefix(cands, sorted);
    let mut cumulative = 0.0f64;
    for i in 0..cands.len() {
        if i == sorted {
            // Everything after the sorted prefix ranks below it, so selecting and sorting the
            // best of the tail extends the prefix.
            let next = (sorted * 4).min(cands.len());
            sort_prefix(&mut cands[sorted..], next - sorted);
            sorted = next;
        }
        cumulative += f64::from(cands[i].p);
        if cumulative >= f64::from(p) {
            cands.truncate(i + 1);
            return;
        }
    }
}

/// Keeps candidates whose probability is at least `p` times the best one's, i.e. whose
/// logit is at least `max + ln p`; order is preserved and the best token always survives.
fn min_p(cands: &mut Vec<Candidate>, p: f32) {
    if p <= 0.0 || cands.is_empty() {
        return;
    }
    let max = cands.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max);
    let threshold = max + p.ln();
    cands.retain(|c| c.logit >= threshold);
}

/// Fills in `p` from the logits. Rows with infinite maxima are degenerate rather than
/// errors: `+inf` logits share all the mass, and a row of only `-inf` is uniform.
fn softmax(cands: &mut [Candidate]) {
    let max = cands.iter().map(|c| c.logit).fold(f32::NEG_INFINITY, f32::max);
    if max.is_infinite() {
        let n = cands.iter().filter(|c| c.logit == max).count();
        for c in cands.iter_mut() {
            c.p = if c.logit == max { 1.0 / n as f32 } else { 0.0 };
        }
        return;
    }
    let mut sum = 0.0f64;
    for c in cands.iter_mut() {
        c.p = (c.logit - max).exp();
        sum += f64::from(c.p);
    }
    for c in cands.iter_mut() {
        c.p = (f64::from(c.p) / sum) as f32;
    }
}

/// Inverse-CDF draw with `u` uniform in [0, 1). Rounding can leave the cumulative sum a hair
/// short of the target; the last candidate with non-zero probability absorbs that.
fn draw(cands: &[Candidate], u: f64) -> Option<u32> {
    let total: f64 = cands.iter().map(|c| f64::from(c.p)).sum();
    let target = u * total;
    let mut cumulative = 0.0f64;
    let mut last = None;
    for c in cands {
        if c.p <= 0.0 {
            continue;
        }
        cumulative += f64::from(c.p);
        last = Some(c.id);
        if target < cumulative {
            break;
        }
    }
    last.or_else(|| cands.first().map(|c| c.id))
}

/// xoshiro256** seeded through splitmix64: small, fast, statistically solid and, unlike a
/// dependency's RNG, guaranteed to produce the same stream for a seed across versions.
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn seeded(seed: u64) -> Rng {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    /// Seeds from the clock plus a process-wide counter, so that unseeded samplers created in
    /// the same instant still get different streams.
    fn from_clock() -> Rng {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let count = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
        Rng::seeded(nanos ^ count.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests;
