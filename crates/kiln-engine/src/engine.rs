//! Runs a model over sequences: prefill in chunks, then sample token by token.
//!
//! The engine owns all model state (weights, KV cache, worker pool, scratch). Every step goes
//! through `Model::forward` with a `Batch`, the same path a multi-sequence server step takes.

use crate::block_manager::{BlockManager, OutOfBlocks};
use crate::constraint::{ConstraintError, Grammar, GrammarCompiler};
use crate::generation::Generation;
use crate::sampler::{SamplingError, SamplingParams};
use crate::sequence::Sequence;
use kiln_kernels::ThreadPool;
use kiln_models::{Batch, KvCache, Model, ModelError, Scratch};
use kiln_tokenizer::Tokenizer;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Token slots per KV block.
pub const BLOCK_SIZE: usize = 16;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub n_threads: usize,
    /// Context size: the most tokens (prompt and answer) a sequence may hold.
    pub num_ctx: usize,
    /// Most prompt tokens computed in one step; bounds the scratch memory of a long prompt.
    pub prefill_chunk: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { n_threads: default_threads(), num_ctx: 4096, prefill_chunk: 512 }
    }
}

/// One thread per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    #[error("the prompt has {n_prompt} tokens, more than the context size of {num_ctx}; raise --num-ctx (the model was trained for {trained}) or shorten the prompt")]
    PromptTooLong { n_prompt: usize, num_ctx: usize, trained: usize },
    #[error(transparent)]
    OutOfBlocks(#[from] OutOfBlocks),
    #[error("num_ctx must be at least 1")]
    ZeroContext,
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error(transparent)]
    Constraint(#[from] ConstraintError),
}

/// What to generate after the prompt.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    pub sampling: SamplingParams,
    /// Most tokens to generate; `None` runs until an end-of-generation token or the context is full.
    pub max_tokens: Option<usize>,
    /// Generation stops before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
    /// A grammar the answer must match (structured output).
    pub grammar: Option<Grammar>,
    /// The grammar applies only after this text has been generated; before, the answer is
    /// free. The server sets it to the closing tag when the prompt opens a thinking block,
    /// so that the thinking stays free and the grammar shapes the content after it.
    pub grammar_after: Option<String>,
    /// Report each generated token's logprob with this many alternatives (at most
    /// [`crate::logprobs::MAX_TOP_LOGPROBS`]); `None` reports none.
    pub logprobs: Option<usize>,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoneReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached or the context is full.
    Length,
    /// The caller asked to stop.
    Cancelled,
}

impl DoneReason {
    /// The name Ollama and OpenAI use.
    pub fn as_str(self) -> &'static str {
        match self {
            DoneReason::Stop => "stop",
            DoneReason::Length => "length",
            DoneReason::Cancelled => "cancelled",
        }
    }
}

/// Counts and timings of one generation, as Ollama reports them.
#[derive(Clone, Debug)]
pub struct GenerationStats {
    /// Prompt tokens computed in this call (not found in the cache).
    pub prompt_eval_count: usize,
    /// Prompt tokens reused from the cache.
    pub prompt_cached: usize,
    pub prompt_eval_duration: Duration,
    pub eval_count: usize,
    pub eval_duration: Duration,
    pub done_reason: DoneReason,
    pub generated: Vec<u32>,
    /// Times the scheduler evicted the sequence to make room and computed it again.
    pub preemptions: usize,
}

pub struct Engine {
    model: Model,
    /// Shared so a streaming decoder can borrow it while the engine steps.
    tokenizer: Arc<Tokenizer>,
    pool: ThreadPool,
    kv: KvCache,
    blocks: BlockManager,
    scratch: Scratch,
    config: EngineConfig,
    /// Built on the first constrained request: indexing the vocabulary takes a moment that
    /// unconstrained use should not pay.
    grammars: OnceLock<Result<GrammarCompiler, ConstraintError>>,
}

impl Engine {
    pub fn new(mut model: Model, tokenizer: Tokenizer, config: EngineConfig) -> Result<Engine, EngineError> {
        if config.num_ctx == 0 {
            return Err(EngineError::ZeroContext);
        }
        model.set_context(config.num_ctx);
        let n_blocks = config.num_ctx.div_ceil(BLOCK_SIZE);
        let kv = model.new_kv_cache(n_blocks, BLOCK_SIZE);
        Ok(Engine {
            pool: ThreadPool::new(config.n_threads),
            kv,
            blocks: BlockManager::new(n_blocks, BLOCK_SIZE),
            scratch: Scratch::default(),
            model,
            tokenizer: Arc::new(tokenizer),
            config,
            grammars: OnceLock::new(),
        })
    }

    /// The same engine computing on `n_threads` threads.
    pub fn with_threads(mut self, n_threads: usize) -> Engine {
        if n_threads != self.pool.n_threads() {
            self.pool = ThreadPool::new(n_threads);
            self.config.n_threads = n_threads;
        }
        self
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A request's decoding state, with its grammar compiled against this vocabulary.
    pub(crate) fn generation(&self, opts: &GenerateOptions) -> Result<Generation, EngineError> {
        let vocab = self.model.config().vocab_size;
        if let Some(&(token, _)) = opts.sampling.logit_bias.iter().find(|(t, _)| *t as usize >= vocab) {
            return Err(SamplingError::UnknownToken { token, vocab }.into());
        }
        let constraint = match &opts.grammar {
            Some(grammar) => Some(self.grammar_compiler()?.compile(grammar)?),
            None => None,
        };
        Ok(Generation::new(opts, constraint)?)
    }

    fn grammar_compiler(&self) -> Result<&GrammarCompiler, ConstraintError> {
        self.grammars.get_or_init(|| GrammarCompiler::new(Arc::clone(&self.tokenizer))).as_ref().map_err(Clone::clone)
    }

    /// Bytes reserved for the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.kv.bytes()
    }

    /// Bytes of KV cache one token of context takes, all layers together.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.kv.bytes_per_token()
    }

    /// One forward pass over a batch the scheduler built.
    pub(crate) fn forward(&mut self, batch: &Batch) -> Result<Vec<f32>, EngineError> {
        Ok(self.model.forward(&self.pool, batch, &mut self.kv, &mut self.scratch)?)
    }

    pub(crate) fn tokenizer_arc(&self) -> Arc<Tokenizer> {
        Arc::clone(&self.tokenizer)
    }

    pub(crate) fn blocks(&mut self) -> &mut BlockManager {
        &mut self.blocks
    }

    /// The KV block manager, for occupancy and prefix-cache statistics.
    pub fn block_stats(&self) -> &BlockManager {
        &self.blocks
    }

    /// Releases the sequence's cache blocks.
    pub fn release(&mut self, seq: &mut Sequence) {
        seq.clear(&mut self.blocks);
    }

    /// Replaces the sequence's tokens by `tokens`, keeping the cache of the common prefix
    /// (a chat turn recomputes only what is new).
    pub fn set_tokens(&mut self, seq: &mut Sequence, tokens: &[u32]) -> Result<(), EngineError> {
        if tokens.len() > self.config.num_ctx {
            return Err(EngineError::PromptTooLong {
                n_prompt: tokens.len(),
                num_ctx: self.config.num_ctx,
                trained: self.model.config().context_length,
            });
        }
        let mut keep = seq.common_prefix(tokens);
        // The last prompt token is always recomputed: its logits start the answer.
        if keep == tokens.len() {
            keep = keep.saturating_sub(1);
        }
        seq.truncate(&mut self.blocks, keep);
        seq.tokens.extend_from_slice(&tokens[keep..]);
        Ok(())
    }

    /// Computes the uncached tokens of `seq` in chunks; returns the logits of its last token.
    pub fn prefill(&mut self, seq: &mut Sequence) -> Result<Vec<f32>, EngineError> {
        seq.reserve(&mut self.blocks, seq.tokens.len())?;
        let mut logits = Vec::new();
        while seq.n_cached < seq.tokens.len() {
            let end = (seq.n_cached + self.config.prefill_chunk).min(seq.tokens.len());
            let batch = Batch::single(&seq.tokens[seq.n_cached..end], seq.n_cached as u32, seq.block_table.clone());
            logits = self.model.forward(&self.pool, &batch, &mut self.kv, &mut self.scratch)?;
            seq.n_cached = end;
        }
        Ok(logits)
    }

    /// Logits at every position of `tokens` (teacher forcing), `[tokens.len()][vocab]`, from
    /// a fresh sequence. For evaluation and tests.
    pub fn logits_all(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, EngineError> {
        let mut seq = Sequence::default();
        self.set_tokens(&mut seq, tokens)?;
        let result = (|| {
            seq.reserve(&mut self.blocks, tokens.len())?;
            let vocab = self.model.config().vocab_size;
            let mut out = Vec::with_capacity(tokens.len());
            for start in (0..tokens.len()).step_by(self.config.prefill_chunk) {
                let end = (start + self.config.prefill_chunk).min(tokens.len());
                let mut batch = Batch::single(&tokens[start..end], start as u32, seq.block_table.clone());
                batch.logits_for = (0..end - start).collect();
                let logits = self.model.forward(&self.pool, &batch, &mut self.kv, &mut self.scratch)?;
                out.extend(logits.chunks_exact(vocab).map(|r| r.to_vec()));
            }
            Ok(out)
        })();
        self.release(&mut seq);
        result
    }

    /// Generates after the sequence's tokens (which must already be set), streaming text to
    /// `on_text`; generation ends early when `on_text` returns false. Generated tokens are
    /// appended to `seq` and stay cached for a following turn.
    pub fn generate(
        &mut self,
        seq: &mut Sequence,
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<GenerationStats, EngineError> {
        let mut gen = self.generation(opts)?;
        let prompt_cached = seq.n_cached;
        let t0 = Instant::now();
        let mut logits = self.prefill(seq)?;
        let prompt_eval_count = seq.tokens.len() - prompt_cached;
        let prompt_eval_duration = t0.elapsed();
        let t1 = Instant::now();
        let tokenizer = Arc::clone(&self.tokenizer);
        let done_reason = loop {
            if !gen.wants_more() {
                break DoneReason::Length;
            }
            let accepted = gen.accept(&tokenizer, &logits, &mut seq.tokens, self.config.num_ctx)?;
            if !accepted.text.is_empty() && !on_text(&accepted.text) {
                break DoneReason::Cancelled;
            }
            if let Some(done) = accepted.done {
                break done;
            }
            logits = self.prefill(seq)?;
        };
        let tail = gen.finish();
        if !tail.is_empty() {
            on_text(&tail);
        }
        let generated = gen.generated;
        Ok(GenerationStats {
            prompt_eval_count,
            prompt_cached,
            prompt_eval_duration,
            eval_count: generated.len(),
            eval_duration: t1.elapsed(),
            done_reason,
            generated,
            preemptions: 0,
        })
    }
}
