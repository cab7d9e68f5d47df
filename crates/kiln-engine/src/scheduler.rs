//! Continuous batching: many requests share each forward pass over the weights.
//!
//! Requests wait in arrival order and join the running set between steps, while it has room
//! (`max_running`) and the KV cache has blocks for their prompts. Each step takes one token
//! from every sequence that is generating and fills the rest of a token budget with prompt
//! chunks, so a long prompt is computed over several steps without stalling the streams
//! already running. When a generating sequence needs a new block and none is left, the most
//! recently admitted sequence is preempted: its blocks are freed and it waits at the front
//! of the queue, to be recomputed (its tokens, generated ones included, are kept).
//!
//! Full blocks are published in the prefix cache as soon as they are computed, and a new
//! request starts from the longest run of cached blocks matching its tokens, so a shared
//! system prompt or chat history is computed once. Only full, immutable blocks are shared;
//! a sequence writes only into blocks it holds alone, so sequences never need copy-on-write.
//!
//! Several answers to one prompt (OpenAI's `n`) are forks: each fork waits until the first
//! answer's prompt is computed and then starts from its published full blocks. The prompt's
//! last, partial block is not shared (its holder writes the next tokens into it): each fork
//! computes those few tokens (fewer than a block) again into a block of its own.

use crate::block_manager::chain_hash;
use crate::engine::{DoneReason, Engine, EngineError, GenerateOptions, GenerationStats};
use crate::generation::Generation;
use crate::logprobs::TokenLogprob;
use crate::sequence::Sequence;
use kiln_models::Batch;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct SchedulerConfig {
    /// Most sequences in one step.
    pub max_running: usize,
    /// Most tokens in one step (one per generating sequence, the rest prompt chunks).
    pub step_tokens: usize,
}

/// What a request hears back, in order: any number of `Text` and `Logprob`, then one `Done`
/// or `Failed`.
#[derive(Debug)]
pub enum Event {
    Text(String),
    /// A generated token's logprob, when the request asked for them; it comes before the
    /// text the token completes (which stop strings and split characters may hold back).
    Logprob(TokenLogprob),
    Done(GenerationStats),
    /// Shared: one failed step fails every request in it.
    Failed(Arc<EngineError>),
}

struct Request {
    id: u64,
    seq: Sequence,
    /// Hashes of the sequence's first full blocks, those published or found in the cache.
    hashes: Vec<u64>,
    n_prompt: usize,
    max_ctx: usize,
    gen: Generation,
    /// Prompt tokens found in the prefix cache at admission.
    prompt_cached: usize,
    admitted: Option<Instant>,
    /// When the prompt was computed and generation began.
    first_sample: Option<Instant>,
    prompt_eval_duration: Duration,
    preemptions: usize,
}

impl Request {
    fn generating(&self) -> bool {
        self.seq.n_cached + 1 >= self.seq.tokens.len() && self.first_sample.is_some()
    }
}

pub struct Scheduler {
    engine: Engine,
    config: SchedulerConfig,
    waiting: VecDeque<Request>,
    running: Vec<Request>,
    /// Forks waiting for the prompt of the request they follow (its id first) to be computed.
    forks: Vec<(u64, Request)>,
}

/// Counts for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedulerStats {
    pub waiting: usize,
    pub running: usize,
    pub blocks_used: usize,
    pub blocks_free: usize,
    pub prefix_hits: u64,
    pub prefix_lookups: u64,
}

impl Scheduler {
    pub fn new(engine: Engine, config: SchedulerConfig) -> Scheduler {
        let config = SchedulerConfig { max_running: config.max_running.max(1), step_tokens: config.step_tokens.max(1) };
        Scheduler { engine, config, waiting: VecDeque::new(), running: Vec::new(), forks: Vec::new() }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Gives the engine back (to rebuild it); every request must have finished.
    pub fn into_engine(self) -> Engine {
        self.engine
    }

    /// Tokens the KV cache holds in all.
    pub fn capacity(&self) -> usize {
        let b = self.engine.block_stats();
        b.n_blocks() * b.block_size()
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty() && self.forks.is_empty()
    }

    pub fn stats(&self) -> SchedulerStats {
        let b = self.engine.block_stats();
        let (prefix_hits, prefix_lookups) = b.cache_hits();
        SchedulerStats {
            waiting: self.waiting.len() + self.forks.len(),
            running: self.running.len(),
            blocks_used: b.n_used(),
            blocks_free: b.n_free(),
            prefix_hits,
            prefix_lookups,
        }
    }

    /// Queues a request: generate after `prompt`, within `num_ctx` tokens in all. Checked
    /// here, so a request that can never run fails at once.
    pub fn add(
        &mut self,
        id: u64,
        prompt: Vec<u32>,
        opts: &GenerateOptions,
        num_ctx: usize,
    ) -> Result<(), EngineError> {
        let r = self.request(id, prompt, opts, num_ctx)?;
        self.waiting.push_back(r);
        Ok(())
    }

    /// Queues another answer to the prompt of request `parent` (added before, with the same
    /// prompt): it starts once the parent's prompt is computed, from the parent's full blocks.
    /// A parent that is gone (finished, failed, cancelled) releases its forks at once.
    pub fn add_fork(
        &mut self,
        id: u64,
        parent: u64,
        prompt: Vec<u32>,
        opts: &GenerateOptions,
        num_ctx: usize,
    ) -> Result<(), EngineError> {
        let r = self.request(id, prompt, opts, num_ctx)?;
        self.forks.push((parent, r));
        Ok(())
    }

    /// Moves the forks whose parent has computed its prompt, or is gone, to the front of the
    /// queue, in the order they were added.
    fn release_forks(&mut self) {
        let computing = |id: u64| {
            self.waiting.iter().any(|r| r.id == id)
                || self.running.iter().any(|r| r.id == id && r.first_sample.is_none())
        };
        let (ready, still): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.forks).into_iter().partition(|(l, _)| !computing(*l));
        self.forks = still;
        for (_, r) in ready.into_iter().rev() {
            self.waiting.push_front(r);
        }
    }

    /// A request ready to queue, checked so that one that can never run fails at once.
    fn request(
        &self,
        id: u64,
        prompt: Vec<u32>,
        opts: &GenerateOptions,
        num_ctx: usize,
    ) -> Result<Request, EngineError> {
        if num_ctx == 0 {
            return Err(EngineError::ZeroContext);
        }
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let max_ctx = num_ctx.min(self.capacity());
        if prompt.len() > max_ctx {
            return Err(EngineError::PromptTooLong {
                n_prompt: prompt.len(),
                num_ctx: max_ctx,
                trained: self.engine.model().config().context_length,
            });
        }
        let gen = self.engine.generation(opts)?;
        let n_prompt = prompt.len();
        let seq = Sequence { tokens: prompt, ..Sequence::default() };
        Ok(Request {
            id,
            seq,
            hashes: Vec::new(),
            n_prompt,
            max_ctx,
            gen,
            prompt_cached: 0,
            admitted: None,
            first_sample: None,
            prompt_eval_duration: Duration::ZERO,
            preemptions: 0,
        })
    }

    /// Drops a request (its client left): its blocks are free at once.
    pub fn cancel(&mut self, id: u64) {
        self.forks.retain(|(_, r)| r.id != id);
        if let Some(i) = self.waiting.iter().position(|r| r.id == id) {
            if let Some(mut r) = self.waiting.remove(i) {
                r.seq.clear(self.engine.blocks());
            }
        }
        if let Some(i) = self.running.iter().position(|r| r.id == id) {
            let mut r = self.running.remove(i);
            r.seq.clear(self.engine.blocks());
        }
    }

    /// Starts the request from the longest run of cached blocks matching its tokens. The
    /// last token is always computed (its logits start the answer).
    fn attach_cached_prefix(&mut self, r: &mut Request) {
        let bs = self.engine.block_stats().block_size();
        let full = (r.seq.tokens.len() - 1) / bs;
        let mut prev = None;
        for i in 0..full {
            let h = chain_hash(prev, &r.seq.tokens[i * bs..(i + 1) * bs]);
            match self.engine.blocks().lookup(h) {
                Some(b) => {
                    r.seq.block_table.push(b);
                    r.hashes.push(h);
                    prev = Some(h);
                }
                None => break,
            }
        }
        r.seq.n_cached = r.seq.block_table.len() * bs;
    }

    /// Moves waiting requests into the running set while there is room for their prompts.
    fn admit(&mut self, events: &mut Vec<(u64, Event)>) {
        self.release_forks();
        while self.running.len() < self.config.max_running {
            let Some(mut r) = self.waiting.pop_front() else { break };
            self.attach_cached_prefix(&mut r);
            let blocks = self.engine.blocks();
            if r.seq.reserve(blocks, r.seq.tokens.len()).is_err() {
                r.seq.evict(blocks);
                r.hashes.clear();
                if self.running.is_empty() {
                    // Nothing will ever free enough blocks for this one.
                    let e = EngineError::OutOfBlocks(crate::block_manager::OutOfBlocks {
                        total: blocks.n_blocks(),
                        block_size: blocks.block_size(),
                    });
                    events.push((r.id, Event::Failed(Arc::new(e))));
                    continue;
                }
                self.waiting.push_front(r);
                break;
            }
            if r.admitted.is_none() {
                r.prompt_cached = r.seq.n_cached.min(r.n_prompt);
                r.admitted = Some(Instant::now());
            }
            self.running.push(r);
        }
    }

    /// Frees the blocks of the most recently admitted request and puts it back at the front
    /// of the queue, to be recomputed when there is room again.
    fn preempt_last(&mut self) {
        if let Some(mut r) = self.running.pop() {
            r.seq.evict(self.engine.blocks());
            r.hashes.clear();
            r.preemptions += 1;
            self.waiting.push_front(r);
        }
    }

    /// Gives every generating sequence the block its next token needs, preempting the most
    /// recently admitted requests while the cache is short.
    fn make_room_for_decodes(&mut self, events: &mut Vec<(u64, Event)>) {
        loop {
            let bm = self.engine.block_stats();
            let need: usize = self
                .running
                .iter()
                .filter(|r| r.generating())
                .map(|r| bm.blocks_for(r.seq.tokens.len()).saturating_sub(r.seq.block_table.len()))
                .sum();
            if need <= bm.n_free() {
                break;
            }
            if self.running.len() == 1 {
                // Alone and still out of room: the cache cannot hold this sequence.
                let mut r = self.running.remove(0);
                r.seq.clear(self.engine.blocks());
                let b = self.engine.block_stats();
                let e = crate::block_manager::OutOfBlocks { total: b.n_blocks(), block_size: b.block_size() };
                events.push((r.id, Event::Failed(Arc::new(EngineError::OutOfBlocks(e)))));
                return;
            }
            self.preempt_last();
        }
        for r in self.running.iter_mut().filter(|r| r.generating()) {
            let n = r.seq.tokens.len();
            // Cannot fail: the loop above made room for every one of them.
            let _ = r.seq.reserve(self.engine.blocks(), n);
        }
    }

    /// Runs one step: admits what fits, computes one forward pass over every running
    /// sequence, samples where a sequence's last token was computed. Returns what each
    /// request should hear.
    pub fn step(&mut self) -> Vec<(u64, Event)> {
        let mut events = Vec::new();
        self.admit(&mut events);
        self.make_room_for_decodes(&mut events);
        if self.running.is_empty() {
            return events;
        }
        // Plan: generating sequences first (one token each), then prompt chunks.
        let mut order: Vec<usize> = (0..self.running.len()).collect();
        order.sort_by_key(|&i| !self.running[i].generating());
        let mut batch = Batch::default();
        let mut planned: Vec<(usize, usize)> = Vec::new(); // (running index, tokens taken)
        let mut sampled: Vec<usize> = Vec::new();
        let mut budget = self.config.step_tokens;
        for i in order {
            let r = &self.running[i];
            let todo = r.seq.tokens.len() - r.seq.n_cached;
            let take = todo.min(budget);
            if take == 0 {
                continue;
            }
            let seq_index = batch.block_tables.len();
            for p in r.seq.n_cached..r.seq.n_cached + take {
                batch.tokens.push(r.seq.tokens[p]);
                batch.positions.push(p as u32);
                batch.seq.push(seq_index);
            }
            batch.block_tables.push(r.seq.block_table.clone());
            if take == todo {
                batch.logits_for.push(batch.tokens.len() - 1);
                sampled.push(i);
            }
            planned.push((i, take));
            budget -= take;
        }
        let logits = match self.forward_and_prepare_masks(&batch, &sampled) {
            Ok(l) => l,
            Err(e) => {
                // A failed step leaves the sequences' caches undefined: all of them fail.
                let e = Arc::new(e);
                for mut r in std::mem::take(&mut self.running) {
                    r.seq.clear(self.engine.blocks());
                    events.push((r.id, Event::Failed(Arc::clone(&e))));
                }
                return events;
            }
        };
        for &(i, take) in &planned {
            self.running[i].seq.n_cached += take;
            self.publish_full_blocks(i);
        }
        let vocab = self.engine.model().config().vocab_size;
        let tokenizer = self.engine.tokenizer_arc();
        let mut finished: Vec<usize> = Vec::new();
        for (row, &i) in sampled.iter().enumerate() {
            let r = &mut self.running[i];
            if r.first_sample.is_none() {
                let now = Instant::now();
                r.prompt_eval_duration = r.admitted.map(|t| now - t).unwrap_or_default();
                r.first_sample = Some(now);
            }
            if !r.gen.wants_more() {
                finished.push(i);
                events.push((r.id, Event::Done(stats(r, DoneReason::Length))));
                continue;
            }
            let row_logits = &logits[row * vocab..(row + 1) * vocab];
            let accepted = match r.gen.accept(&tokenizer, row_logits, &mut r.seq.tokens, r.max_ctx) {
                Ok(a) => a,
                Err(e) => {
                    finished.push(i);
                    events.push((r.id, Event::Failed(Arc::new(e.into()))));
                    continue;
                }
            };
            if let Some(lp) = accepted.logprob {
                events.push((r.id, Event::Logprob(lp)));
            }
            if !accepted.text.is_empty() {
                events.push((r.id, Event::Text(accepted.text)));
            }
            if let Some(done) = accepted.done {
                let tail = r.gen.finish();
                if !tail.is_empty() {
                    events.push((r.id, Event::Text(tail)));
                }
                finished.push(i);
                events.push((r.id, Event::Done(stats(r, done))));
            }
        }
        finished.sort_unstable();
        for i in finished.into_iter().rev() {
            let mut r = self.running.remove(i);
            r.seq.clear(self.engine.blocks());
        }
        events
    }

    /// Runs the forward pass while a side thread computes the grammar masks of the
    /// constrained sequences about to sample (the `sampled` running indices): a mask depends
    /// only on the tokens already committed, so neither waits for the other, and a
    /// constrained sequence does not slow the step for the others.
    fn forward_and_prepare_masks(&mut self, batch: &Batch, sampled: &[usize]) -> Result<Vec<f32>, EngineError> {
        let mut constrained: Vec<&mut Generation> = self
            .running
            .iter_mut()
            .enumerate()
            .filter(|(i, r)| r.gen.is_constrained() && r.gen.wants_more() && sampled.contains(i))
            .map(|(_, r)| &mut r.gen)
            .collect();
        if constrained.is_empty() {
            return self.engine.forward(batch);
        }
        let engine = &mut self.engine;
        std::thread::scope(|s| {
            s.spawn(|| constrained.iter_mut().for_each(|g| g.prepare_mask()));
            engine.forward(batch)
        })
    }

    /// Publishes the blocks of running request `i` that became full.
    fn publish_full_blocks(&mut self, i: usize) {
        let bs = self.engine.block_stats().block_size();
        let r = &mut self.running[i];
        while (r.hashes.len() + 1) * bs <= r.seq.n_cached {
            let k = r.hashes.len();
            let h = chain_hash(r.hashes.last().copied(), &r.seq.tokens[k * bs..(k + 1) * bs]);
            let block = r.seq.block_table[k];
            r.hashes.push(h);
            self.engine.blocks().publish(block, h);
        }
    }
}

fn stats(r: &Request, done_reason: DoneReason) -> GenerationStats {
    GenerationStats {
        prompt_eval_count: r.n_prompt - r.prompt_cached,
        prompt_cached: r.prompt_cached,
        prompt_eval_duration: r.prompt_eval_duration,
        eval_count: r.gen.generated.len(),
        eval_duration: r.first_sample.map(|t| t.elapsed()).unwrap_or_default(),
        done_reason,
        generated: r.gen.generated.clone(),
        preemptions: r.preemptions,
    }
}
