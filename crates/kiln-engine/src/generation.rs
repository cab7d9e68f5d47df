//! One request's decoding state between forward steps: its sampler, stop strings, streaming
//! text decoder, limits and grammar constraint. The single-sequence loop (`Engine::generate`)
//! and the continuous-batching scheduler both turn logits into tokens and text through it.

use crate::constraint::{Constraint, ConstraintError};
use crate::engine::{DoneReason, GenerateOptions};
use crate::logprobs::TokenLogprob;
use crate::sampler::{Sampler, SamplingError, StopMatcher, TokenMask};
use kiln_tokenizer::DecodeState;
use kiln_tokenizer::Tokenizer;

pub struct Generation {
    sampler: Sampler,
    stops: StopMatcher,
    decode: DecodeState,
    max_tokens: Option<usize>,
    /// Alternatives to report per token when logprobs are wanted.
    logprobs: Option<usize>,
    pub generated: Vec<u32>,
    stopped_by_string: bool,
    constraint: Option<Constraint>,
    /// While set, the constraint waits: the answer is free until this text has been
    /// generated (the end of a thinking block), and `recent` keeps the text that may hold it.
    constraint_after: Option<String>,
    recent: String,
}

/// What one sampled token produced.
#[derive(Debug, PartialEq)]
pub struct Accepted {
    /// Text that became final (possibly empty: a split character or a partial stop string
    /// is held back).
    pub text: String,
    /// Set when the generation is over.
    pub done: Option<DoneReason>,
    /// The token's logprob when the request asked for them; none for an end-of-generation
    /// token, which is not part of the answer.
    pub logprob: Option<TokenLogprob>,
}

impl Generation {
    /// `constraint`: the grammar the answer must match, compiled for this request.
    pub fn new(opts: &GenerateOptions, constraint: Option<Constraint>) -> Result<Generation, SamplingError> {
        Ok(Generation {
            sampler: Sampler::new(opts.sampling.clone())?,
            stops: StopMatcher::new(opts.stop.clone()),
            decode: DecodeState::new(false),
            max_tokens: opts.max_tokens,
            logprobs: opts.logprobs,
            generated: Vec::new(),
            stopped_by_string: false,
            constraint,
            constraint_after: opts.grammar_after.clone().filter(|t| !t.is_empty()),
            recent: String::new(),
        })
    }

    /// Whether a grammar constrains the next token.
    pub fn is_constrained(&self) -> bool {
        self.active().is_some()
    }

    fn active(&self) -> Option<&Constraint> {
        self.constraint.as_ref().filter(|_| self.constraint_after.is_none())
    }

    fn active_mut(&mut self) -> Option<&mut Constraint> {
        self.constraint.as_mut().filter(|_| self.constraint_after.is_none())
    }

    /// Computes the constraint's mask for the next token ahead of [`Generation::accept`], so
    /// that it can run while the forward pass computes the logits.
    pub fn prepare_mask(&mut self) {
        if let Some(c) = self.active_mut() {
            c.prepare();
        }
    }

    /// Watches for the text that starts the constraint; once seen, the next token is
    /// constrained.
    fn watch_for_constraint_start(&mut self, tok: &Tokenizer, token: u32) {
        let Some(after) = &self.constraint_after else { return };
        self.recent.push_str(&String::from_utf8_lossy(&tok.token_to_piece(token, false)));
        if self.recent.contains(after.as_str()) {
            self.constraint_after = None;
            self.recent = String::new();
        } else if self.recent.len() > 4 * after.len() {
            let keep = self.recent.len() - after.len();
            let cut = (keep..self.recent.len()).find(|&i| self.recent.is_char_boundary(i)).unwrap_or(0);
            self.recent.drain(..cut);
        }
    }

    /// Whether another token may be generated (checked before computing logits for it).
    pub fn wants_more(&self) -> bool {
        self.max_tokens.is_none_or(|m| self.generated.len() < m)
    }

    /// Samples the next token from `logits`, appends it to `tokens` (the sequence so far,
    /// which `max_ctx` bounds) and says what it produced.
    /// With a constraint, only tokens its grammar allows are sampled, and the answer ends as
    /// soon as the grammar is complete.
    pub fn accept(
        &mut self,
        tok: &Tokenizer,
        logits: &[f32],
        tokens: &mut Vec<u32>,
        max_ctx: usize,
    ) -> Result<Accepted, ConstraintError> {
        let waiting = self.constraint_after.is_some();
        let token = match self.constraint.as_mut().filter(|_| !waiting) {
            Some(c) => self.sampler.sample_masked(logits, tokens, Some(TokenMask(c.allowed()?))),
            None => self.sampler.sample(logits, tokens),
        };
        if tok.is_eog(token) {
            return Ok(Accepted { text: String::new(), done: Some(DoneReason::Stop), logprob: None });
        }
        let logprob = self.logprobs.map(|n| TokenLogprob::new(tok, logits, token, n));
        if let Some(c) = self.active_mut() {
            c.commit(token)?;
        }
        self.watch_for_constraint_start(tok, token);
        self.generated.push(token);
        tokens.push(token);
        let outcome = self.stops.push(&self.decode.push(tok, token));
        if outcome.stopped {
            self.stopped_by_string = true;
            return Ok(Accepted { text: outcome.emit, done: Some(DoneReason::Stop), logprob });
        }
        if self.active().is_some_and(Constraint::is_finished) {
            return Ok(Accepted { text: outcome.emit, done: Some(DoneReason::Stop), logprob });
        }
        // Stop before computing logits nobody will sample from.
        let done = (!self.wants_more() || tokens.len() >= max_ctx).then_some(DoneReason::Length);
        Ok(Accepted { text: outcome.emit, done, logprob })
    }

    /// Text still held back when the generation ends (an incomplete character, a partial
    /// match of a stop string that never completed); nothing after a stop string.
    pub fn finish(&mut self) -> String {
        if self.stopped_by_string {
            return String::new();
        }
        self.stops.push(&self.decode.finish()).emit + &self.stops.finish()
    }
}
