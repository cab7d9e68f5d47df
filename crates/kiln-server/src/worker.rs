//! One OS thread per loaded model, owning its engine inside a continuous-batching scheduler.
//!
//! The engine is single-threaded state (KV cache, scratch, worker pool), so it never leaves
//! its thread. Requests arrive over a channel; between steps the thread takes every request
//! that arrived, renders and tokenizes its prompt, and hands it to the scheduler, which runs
//! all of them together, one forward pass per step. Each request carries the sender of its own
//! event stream; when the client goes away the receiver is dropped, and the thread cancels the
//! request before the next step, which frees its KV blocks at once.
//!
//! An embedding model gets a thread of its own kind instead (`embed_worker`), behind the same
//! handle.

use crate::choices::Siblings;
use crate::embed_worker::{self, EmbedJob};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::options::RequestOptions;
use kiln_engine::chat_template::ChatMessage;
use kiln_engine::constraint::ConstraintError;
use kiln_engine::logprobs::TokenLogprob;
use kiln_engine::prompt::{ChatExtras, PromptFormat};
use kiln_engine::reasoning::{Split, ThinkingSplitter, ThinkingTags};
use kiln_engine::scheduler::{self, Scheduler, SchedulerConfig, SchedulerStats};
use kiln_engine::tools::{Part, ToolCall, ToolCallSplitter, ToolChoice, ToolFormat};
use kiln_engine::{
    default_threads, DoneReason, EmbedInput, EmbedOptions, Embedder, Embeddings, Engine, EngineConfig, EngineError,
    GenerationStats,
};
use kiln_gguf::GgufFile;
use kiln_models::Model;
use kiln_tokenizer::Tokenizer;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What to turn into prompt tokens.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Text sent as is (Ollama's `raw`, OpenAI's completions).
    Raw(String),
    /// A conversation rendered through a chat template.
    Chat(ChatPrompt),
    /// Fill in the middle: text between a prompt and a suffix, through a template that
    /// places both (code completion).
    Fill { system: Option<String>, prompt: String, suffix: String, template: Option<Arc<str>> },
}

/// A conversation and how to render it.
#[derive(Debug, Clone, Default)]
pub struct ChatPrompt {
    pub messages: Vec<ChatMessage>,
    /// Template source (the model's Modelfile TEMPLATE, or a request's `template`); `None`:
    /// the chat template inside the GGUF.
    pub template: Option<Arc<str>>,
    /// Tool definitions and the thinking switch, passed to the template.
    pub extras: ChatExtras,
    pub tool_choice: ToolChoice,
}

/// One request for the model thread.
pub struct Job {
    pub prompt: Prompt,
    pub options: RequestOptions,
    pub events: mpsc::UnboundedSender<Event>,
}

/// Counts and timings of a finished request.
#[derive(Debug, Clone)]
pub struct Done {
    pub done_reason: DoneReason,
    /// All prompt tokens, cached or not: what OpenAI's `usage.prompt_tokens` means.
    pub prompt_tokens: usize,
    /// Prompt tokens found in the prefix cache (OpenAI's `prompt_tokens_details.cached_tokens`).
    pub prompt_cached: usize,
    pub prompt_eval_duration: Duration,
    pub eval_count: usize,
    pub eval_duration: Duration,
    /// Time spent loading the model (or rebuilding it for a new context size) for this request.
    pub load_duration: Duration,
}

/// What the model thread reports about one request, in order: any number of `Text` and
/// `Thinking`, then exactly one `Done` or `Error`.
#[derive(Debug, Clone)]
pub enum Event {
    /// Answer text.
    Text(String),
    /// Text of the model's thinking block, for models whose template shows they think.
    Thinking(String),
    /// A generated token's logprob (when asked for), before the text it completes.
    Logprob(TokenLogprob),
    /// A whole call of one of the request's tools.
    ToolCall(ToolCall),
    Done(Done),
    Error(ApiError),
}

/// How a model thread runs: threads, batch size, queue bound.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerConfig {
    /// Compute threads (default: one per core).
    pub n_threads: Option<usize>,
    /// Most sequences in one batch (KILN_NUM_PARALLEL; default: from the memory the KV
    /// cache may take).
    pub num_parallel: Option<usize>,
    /// Most requests waiting beyond those running (KILN_MAX_QUEUE); more get 503.
    pub max_queue: usize,
}

/// Requests waiting beyond the running batch before new ones are refused, as Ollama's default.
pub const DEFAULT_MAX_QUEUE: usize = 512;

/// Most sequences per batch when memory allows.
const MAX_DEFAULT_PARALLEL: usize = 16;

/// Tokens in one step: one per generating sequence, the rest prompt chunks.
const STEP_TOKENS: usize = 512;

/// Where a model thread takes its work, by the kind of model it runs.
enum Jobs {
    Generate(std_mpsc::Sender<Job>),
    Embed(std_mpsc::Sender<EmbedJob>),
}

/// A model thread as the rest of the server sees it.
pub struct WorkerHandle {
    jobs: Jobs,
    /// Requests queued or running (the keep-alive clock only runs while this is zero).
    pending: Arc<AtomicUsize>,
    /// When the last request finished (or the model loaded, or a request touched it).
    idle_since: Arc<Mutex<Instant>>,
    /// Context size of the last request (what `/api/ps` shows).
    pub num_ctx: Arc<AtomicUsize>,
    /// Bytes of the KV cache as last built.
    kv_bytes: Arc<AtomicUsize>,
    /// Bytes of KV cache one token of context takes (the model's, whatever the cache size).
    kv_bytes_per_token: usize,
    /// The scheduler's counts after its last step.
    stats: Arc<Mutex<SchedulerStats>>,
    /// Requests allowed queued or running at once.
    capacity: usize,
}

/// What the thread shares with its handle.
#[derive(Clone)]
pub(crate) struct Shared {
    pending: Arc<AtomicUsize>,
    idle_since: Arc<Mutex<Instant>>,
    num_ctx: Arc<AtomicUsize>,
    kv_bytes: Arc<AtomicUsize>,
    stats: Arc<Mutex<SchedulerStats>>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Shared {
    /// A request left the thread (finished, failed or cancelled).
    pub(crate) fn request_done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
    }
}

impl WorkerHandle {
    /// Starts the thread and waits until the model is loaded.
    pub async fn spawn(
        path: &Path,
        config: WorkerConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(WorkerHandle, Duration), ApiError> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let shared = Shared {
            pending: Arc::new(AtomicUsize::new(0)),
            idle_since: Arc::new(Mutex::new(Instant::now())),
            num_ctx: Arc::new(AtomicUsize::new(crate::options::DEFAULT_NUM_CTX)),
            kv_bytes: Arc::new(AtomicUsize::new(0)),
            stats: Arc::new(Mutex::new(SchedulerStats::default())),
            metrics,
        };
        let thread_shared = shared.clone();
        let thread_path = path.to_path_buf();
        let name = format!("kiln-model-{}", path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default());
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let started = Instant::now();
                let file = match GgufFile::open(&thread_path) {
                    Ok(f) => Arc::new(f),
                    Err(e) => {
                        let _ =
                            ready_tx.send(Err(ApiError::internal(format!("opening {}: {e}", thread_path.display()))));
                        return;
                    }
                };
                let n_threads = config.n_threads.unwrap_or_else(default_threads).max(1);
                if kiln_models::is_encoder(&file) {
                    match Embedder::from_file(file, n_threads) {
                        Ok(embedder) => {
                            // `/api/ps` shows an encoder's context: the longest input it takes.
                            let context = embedder.encoder().config().context_length;
                            thread_shared.num_ctx.store(context, Ordering::Relaxed);
                            let (tx, rx) = std_mpsc::channel();
                            let _ = ready_tx.send(Ok((started.elapsed(), 1, 0, Jobs::Embed(tx))));
                            embed_worker::run(embedder, thread_shared, rx);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(ApiError::internal(format!("loading the model: {e}"))));
                        }
                    }
                    return;
                }
                match ModelThread::load(file, config, thread_shared) {
                    Ok(state) => {
                        let per_token = state.scheduler.as_ref().map_or(0, |s| s.engine().kv_bytes_per_token());
                        let (tx, rx) = std_mpsc::channel();
                        let _ =
                            ready_tx.send(Ok((started.elapsed(), state.max_running, per_token, Jobs::Generate(tx))));
                        state.run(rx);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| ApiError::internal(format!("starting the model thread: {e}")))?;
        let (load, max_running, kv_bytes_per_token, jobs) =
            ready_rx.await.map_err(|_| ApiError::internal("the model thread stopped while loading"))??;
        let Shared { pending, idle_since, num_ctx, kv_bytes, stats, .. } = shared;
        let capacity = max_running + config.max_queue;
        Ok((WorkerHandle { jobs, pending, idle_since, num_ctx, kv_bytes, kv_bytes_per_token, stats, capacity }, load))
    }

    /// Bytes of the KV cache.
    pub fn kv_bytes(&self) -> u64 {
        self.kv_bytes.load(Ordering::Relaxed) as u64
    }

    /// Bytes of KV cache one token of context takes, all layers together.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.kv_bytes_per_token
    }

    /// The scheduler's counts after its last step.
    pub fn stats(&self) -> SchedulerStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request is queued or running.
    pub fn busy(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    /// When the model last became idle.
    pub fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Restarts the idle clock (a request arrived).
    pub fn touch(&self) {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Whether the model computes embeddings (rather than generating text).
    pub fn is_embedding(&self) -> bool {
        matches!(self.jobs, Jobs::Embed(_))
    }

    /// Counts a request as pending, or refuses it when the queue is full: a 503 the client
    /// can retry, never a request dropped silently.
    fn reserve(&self) -> Result<(), ApiError> {
        if self.pending.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::busy(format!(
                "the server is busy: {} requests are queued or running for this model (KILN_MAX_QUEUE); retry later",
                self.capacity
            )));
        }
        Ok(())
    }

    /// Hands a reserved request to the thread (`sent`: whether the channel took it).
    fn sent(&self, sent: bool) -> Result<(), ApiError> {
        if sent {
            Ok(())
        } else {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            Err(ApiError::internal("the model thread has stopped"))
        }
    }

    /// Queues a request; its events arrive on the returned receiver.
    pub fn submit(&self, prompt: Prompt, options: RequestOptions) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
        let Jobs::Generate(jobs) = &self.jobs else {
            return Err(ApiError::bad_request("this model computes embeddings; it does not generate text"));
        };
        self.reserve()?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.sent(jobs.send(Job { prompt, options, events: tx }).is_ok())?;
        Ok(rx)
    }

    /// Queues a batch of inputs to embed; the vectors arrive on the returned receiver.
    pub fn embed(
        &self,
        inputs: Vec<EmbedInput>,
        options: EmbedOptions,
    ) -> Result<oneshot::Receiver<Result<Embeddings, ApiError>>, ApiError> {
        let Jobs::Embed(jobs) = &self.jobs else {
            return Err(ApiError::bad_request("this model generates text; it does not compute embeddings"));
        };
        self.reserve()?;
        let (reply, rx) = oneshot::channel();
        self.sent(jobs.send(EmbedJob { inputs, options, reply }).is_ok())?;
        Ok(rx)
    }
}

/// Compiled templates a model thread keeps; a handful at most (the model's own and those of
/// the library models sharing its weights), so they are never evicted.
type Formats = HashMap<Option<Arc<str>>, PromptFormat>;

/// A request the scheduler is running, as the thread tracks it.
struct Active {
    events: mpsc::UnboundedSender<Event>,
    /// When the thread took the request.
    received: Instant,
    last_text: Option<Instant>,
    /// Time spent rebuilding the engine for this request.
    load: Duration,
    prompt_tokens: usize,
    /// Separates the thinking of a reasoning model's answer from its content.
    thinking: Option<ThinkingSplitter>,
    /// Lifts tool calls out of the content, for requests that offer tools.
    tools: Option<ToolCallSplitter>,
}

/// State owned by a model thread.
struct ModelThread {
    /// The mapping the weights live in, shared by every engine built over it.
    file: Arc<GgufFile>,
    /// `None` only between dropping an engine and building its replacement.
    scheduler: Option<Scheduler>,
    formats: Formats,
    n_threads: usize,
    max_running: usize,
    shared: Shared,
    active: HashMap<u64, Active>,
    /// Requests whose context is larger than the cache: run once the thread is idle, after
    /// rebuilding the cache bigger.
    deferred: VecDeque<Job>,
    next_id: u64,
}

fn engine_error(e: &EngineError) -> ApiError {
    match e {
        EngineError::PromptTooLong { .. }
        | EngineError::Sampling(_)
        | EngineError::ZeroContext
        | EngineError::EmptyPrompt
        | EngineError::Constraint(ConstraintError::Invalid(_) | ConstraintError::Unsupported(_)) => {
            ApiError::bad_request(e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// Builds an engine over an open file with a KV cache of `tokens`. `Model::from_file` only
/// records where each weight lies in the mapping, so rebuilding re-reads no weights.
fn build_engine(file: &Arc<GgufFile>, n_threads: usize, tokens: usize) -> Result<Engine, ApiError> {
    let model =
        Model::from_file(Arc::clone(file)).map_err(|e| ApiError::internal(format!("loading the model: {e}")))?;
    let tokenizer =
        Tokenizer::from_gguf(file).map_err(|e| ApiError::internal(format!("reading the tokenizer: {e}")))?;
    let config = EngineConfig { n_threads, num_ctx: tokens, ..EngineConfig::default() };
    Engine::new(model, tokenizer, config).map_err(|e| engine_error(&e))
}

/// Sequences per batch when KILN_NUM_PARALLEL is not set: as many full default contexts as
/// a fifth of the machine's memory holds, between 1 and 16.
fn default_parallel(file: &Arc<GgufFile>) -> usize {
    let Ok(model) = Model::from_file(Arc::clone(file)) else { return 1 };
    let per_token = model.new_kv_cache(1, 1).bytes_per_token().max(1);
    let budget = crate::limits::total_memory().unwrap_or(8 << 30) / 5;
    let contexts = budget / (per_token as u64 * crate::options::DEFAULT_NUM_CTX as u64);
    (contexts as usize).clamp(1, MAX_DEFAULT_PARALLEL)
}

/// The text of template `source` (`None`: the GGUF's own, if it has one).
fn template_text<'a>(file: &'a GgufFile, source: &'a Option<Arc<str>>) -> Option<&'a str> {
    match source {
        Some(t) => Some(t),
        None => file.get_str("tokenizer.chat_template").ok().flatten(),
    }
}

/// The compiled template for `source` (`None`: the GGUF's own), compiled on first use and kept.
fn format_for<'f>(
    file: &GgufFile,
    tok: &Tokenizer,
    formats: &'f mut Formats,
    source: &Option<Arc<str>>,
) -> Result<&'f PromptFormat, ApiError> {
    match formats.entry(source.clone()) {
        std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
        std::collections::hash_map::Entry::Vacant(e) => {
            let format = PromptFormat::new(tok, template_text(file, source))
                .map_err(|e| ApiError::bad_request(format!("compiling the chat template: {e}")))?;
            Ok(e.insert(format))
        }
    }
}

/// Prompt tokens of a job: raw text as is, a conversation or a fill-in through its template.
fn prompt_tokens(
    file: &GgufFile,
    tok: &Tokenizer,
    formats: &mut Formats,
    prompt: &Prompt,
) -> Result<Vec<u32>, ApiError> {
    let rendered = match prompt {
        Prompt::Raw(text) => return Ok(tok.encode(text, true, true)),
        Prompt::Chat(chat) => {
            format_for(file, tok, formats, &chat.template)?.chat_tokens_with(tok, &chat.messages, &chat.extras)
        }
        Prompt::Fill { system, prompt, suffix, template } => {
            format_for(file, tok, formats, template)?.fill_tokens(tok, system.as_deref(), prompt, suffix)
        }
    };
    rendered.map_err(|e| ApiError::bad_request(format!("rendering the prompt: {e}")))
}

/// The tags a conversation's template shows its model thinking with (raw prompts and
/// fill-ins are the client's own format: their text is left whole).
fn thinking_tags(file: &GgufFile, prompt: &Prompt) -> Option<ThinkingTags> {
    let Prompt::Chat(chat) = prompt else { return None };
    ThinkingTags::of_template(template_text(file, &chat.template)?)
}

/// Refuses `think: true` for a model that cannot think, as Ollama does.
fn check_think(prompt: &Prompt, tags: Option<ThinkingTags>) -> Result<(), ApiError> {
    match prompt {
        Prompt::Chat(chat) if chat.extras.think == Some(true) && tags.is_none() => {
            Err(ApiError::bad_request("the model does not support thinking: its template has no thinking block"))
        }
        _ => Ok(()),
    }
}

/// The parser for a request's tool calls (`None`: it offers no tools, or `tool_choice` is
/// `none`), constraining the answer to a call when one is forced.
fn tool_calls(
    file: &GgufFile,
    prompt: &Prompt,
    generate: &mut kiln_engine::GenerateOptions,
) -> Result<Option<ToolCallSplitter>, ApiError> {
    let Prompt::Chat(chat) = prompt else { return Ok(None) };
    let tools = match &chat.extras.tools {
        Some(serde_json::Value::Array(tools)) if !tools.is_empty() => tools,
        _ if chat.tool_choice.forced().is_some() => {
            return Err(ApiError::bad_request("tool_choice requires a call, but the request has no tools"))
        }
        _ => return Ok(None),
    };
    let Some(format) = template_text(file, &chat.template).and_then(ToolFormat::of_template) else {
        return Err(ApiError::bad_request("the model does not support tools: its template has no tool calls"));
    };
    if chat.tool_choice == ToolChoice::None {
        return Ok(None);
    }
    if let Some(only) = chat.tool_choice.forced() {
        if generate.grammar.is_some() {
            return Err(ApiError::bad_request("a forced tool call cannot be combined with a response format"));
        }
        let grammar = format.forced_grammar(tools, only).map_err(|e| ApiError::bad_request(e.to_string()))?;
        generate.grammar = Some(grammar);
    }
    Ok(Some(ToolCallSplitter::new(format)))
}

impl ModelThread {
    fn load(file: Arc<GgufFile>, config: WorkerConfig, shared: Shared) -> Result<ModelThread, ApiError> {
        let n_threads = config.n_threads.unwrap_or_else(default_threads).max(1);
        let max_running = config.num_parallel.unwrap_or_else(|| default_parallel(&file)).max(1);
        let mut thread = ModelThread {
            file,
            scheduler: None,
            formats: Formats::new(),
            n_threads,
            max_running,
            shared,
            active: HashMap::new(),
            deferred: VecDeque::new(),
            next_id: 0,
        };
        thread.rebuild(max_running * crate::options::DEFAULT_NUM_CTX)?;
        if let Some(s) = &thread.scheduler {
            s.engine().model().warm(&mut |_, _| {});
        }
        Ok(thread)
    }

    /// (Re)builds the engine with a KV cache of `tokens`. The old engine (and its cache) is
    /// dropped first, so two caches never exist at once.
    fn rebuild(&mut self, tokens: usize) -> Result<(), ApiError> {
        self.scheduler = None;
        let engine = build_engine(&self.file, self.n_threads, tokens)?;
        self.shared.kv_bytes.store(engine.kv_bytes(), Ordering::Relaxed);
        let config = SchedulerConfig { max_running: self.max_running, step_tokens: STEP_TOKENS };
        self.scheduler = Some(Scheduler::new(engine, config));
        Ok(())
    }

    fn idle(&self) -> bool {
        self.scheduler.as_ref().is_none_or(Scheduler::is_idle)
    }

    /// Serves until every handle is gone and the last request is done.
    fn run(mut self, rx: std_mpsc::Receiver<Job>) {
        loop {
            if self.idle() && self.deferred.is_empty() {
                match rx.recv() {
                    Ok(job) => self.accept(job, Duration::ZERO),
                    Err(_) => return,
                }
            }
            while let Ok(job) = rx.try_recv() {
                self.accept(job, Duration::ZERO);
            }
            if self.idle() {
                if let Some(job) = self.deferred.pop_front() {
                    let started = Instant::now();
                    match self.rebuild(job.options.num_ctx) {
                        Ok(()) => self.accept(job, started.elapsed()),
                        Err(e) => self.fail(&job.events, e),
                    }
                }
            }
            self.drop_abandoned();
            self.step();
        }
    }

    fn fail(&self, events: &mpsc::UnboundedSender<Event>, e: ApiError) {
        self.shared.metrics.requests_failed.fetch_add(1, Ordering::Relaxed);
        let _ = events.send(Event::Error(e));
        self.shared.request_done();
    }

    /// Turns a job into a scheduled request, or answers it with an error.
    fn accept(&mut self, mut job: Job, load: Duration) {
        // A client that left while the request waited in the channel costs nothing.
        if job.events.is_closed() {
            self.shared.request_done();
            return;
        }
        let Some(scheduler) = self.scheduler.as_mut() else {
            return self.fail(&job.events, ApiError::internal("the model is not loaded"));
        };
        if job.options.num_ctx > scheduler.capacity() {
            self.deferred.push_back(job);
            return;
        }
        let tags = thinking_tags(&self.file, &job.prompt);
        if let Err(e) = check_think(&job.prompt, tags) {
            return self.fail(&job.events, e);
        }
        let tools = match tool_calls(&self.file, &job.prompt, &mut job.options.generate) {
            Ok(t) => t,
            Err(e) => return self.fail(&job.events, e),
        };
        let tok = scheduler.engine().tokenizer();
        let tokens = match prompt_tokens(&self.file, tok, &mut self.formats, &job.prompt) {
            Ok(t) => t,
            Err(e) => return self.fail(&job.events, e),
        };
        let opened = tags.filter(|&t| ThinkingSplitter::prompt_opens(t, tok, &tokens));
        let thinking = tags.map(|tags| ThinkingSplitter::new(tags, opened.is_some()));
        // A grammar shapes the content: thinking the prompt opened stays free until it closes.
        let generate = &mut job.options.generate;
        generate.grammar_after = opened.filter(|_| generate.grammar.is_some()).map(|t| t.close.to_string());
        let id = self.next_id;
        self.next_id += 1;
        let prompt_tokens = tokens.len();
        let (generate, num_ctx, siblings) = (&job.options.generate, job.options.num_ctx, &job.options.siblings);
        let added = match siblings.as_ref().and_then(Siblings::parent) {
            Some(parent) => scheduler.add_fork(id, parent, tokens, generate, num_ctx),
            None => scheduler.add(id, tokens, generate, num_ctx),
        };
        if let Err(e) = added {
            return self.fail(&job.events, engine_error(&e));
        }
        if let Some(s) = siblings {
            s.set_parent(id);
        }
        self.shared.num_ctx.store(job.options.num_ctx, Ordering::Relaxed);
        let active = Active {
            events: job.events,
            received: Instant::now(),
            last_text: None,
            load,
            prompt_tokens,
            thinking,
            tools,
        };
        self.active.insert(id, active);
    }

    /// Cancels the requests whose clients went away, freeing their blocks before the step.
    fn drop_abandoned(&mut self) {
        let gone: Vec<u64> = self.active.iter().filter(|(_, a)| a.events.is_closed()).map(|(&id, _)| id).collect();
        for id in gone {
            self.cancel(id);
        }
    }

    fn cancel(&mut self, id: u64) {
        if let Some(s) = self.scheduler.as_mut() {
            s.cancel(id);
        }
        if self.active.remove(&id).is_some() {
            self.shared.request_done();
        }
    }

    fn step(&mut self) {
        let Some(scheduler) = self.scheduler.as_mut() else { return };
        if scheduler.is_idle() {
            return;
        }
        let events = scheduler.step();
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = scheduler.stats();
        for (id, event) in events {
            self.deliver(id, event);
        }
    }

    /// Passes one scheduler event to its request's client, recording metrics.
    fn deliver(&mut self, id: u64, event: scheduler::Event) {
        let Some(a) = self.active.get_mut(&id) else { return };
        let m = &self.shared.metrics;
        match event {
            scheduler::Event::Text(text) => {
                let now = Instant::now();
                match a.last_text {
                    None => m.time_to_first_token.observe(now - a.received),
                    Some(t) => m.inter_token_latency.observe(now - t),
                }
                a.last_text = Some(now);
                let split = match a.thinking.as_mut() {
                    Some(s) => s.push(&text),
                    None => Split { thinking: String::new(), content: text },
                };
                if !a.send(split) {
                    self.cancel(id);
                }
            }
            scheduler::Event::Logprob(lp) => {
                if a.events.send(Event::Logprob(lp)).is_err() {
                    self.cancel(id);
                }
            }
            scheduler::Event::Done(stats) => {
                if let Some(rest) = a.thinking.as_mut().map(ThinkingSplitter::finish) {
                    a.send(rest);
                }
                if let Some(rest) = a.tools.as_mut().map(ToolCallSplitter::finish) {
                    a.send_parts(rest);
                }
                let done = finished(&stats, a);
                m.requests.fetch_add(1, Ordering::Relaxed);
                m.prompt_tokens.fetch_add(a.prompt_tokens as u64, Ordering::Relaxed);
                m.prompt_tokens_cached.fetch_add(stats.prompt_cached as u64, Ordering::Relaxed);
                m.generated_tokens.fetch_add(stats.eval_count as u64, Ordering::Relaxed);
                let _ = a.events.send(Event::Done(done));
                self.active.remove(&id);
                self.shared.request_done();
            }
            scheduler::Event::Failed(e) => {
                if let Some(a) = self.active.remove(&id) {
                    self.fail(&a.events, engine_error(&e));
                }
            }
        }
    }
}

impl Active {
    /// Sends the non-empty parts of `split`, the content's tool calls lifted out; false once
    /// the client has gone.
    fn send(&mut self, split: Split) -> bool {
        let thinking = split.thinking.is_empty() || self.events.send(Event::Thinking(split.thinking)).is_ok();
        thinking
            && match self.tools.as_mut() {
                Some(tools) => {
                    let parts = tools.push(&split.content);
                    self.send_parts(parts)
                }
                None => split.content.is_empty() || self.events.send(Event::Text(split.content)).is_ok(),
            }
    }

    fn send_parts(&self, parts: Vec<Part>) -> bool {
        parts.into_iter().all(|p| {
            let event = match p {
                Part::Content(text) => Event::Text(text),
                Part::Call(call) => Event::ToolCall(call),
            };
            self.events.send(event).is_ok()
        })
    }
}

/// The counts a finished request reports.
fn finished(stats: &GenerationStats, a: &Active) -> Done {
    Done {
        done_reason: stats.done_reason,
        prompt_tokens: a.prompt_tokens,
        prompt_cached: stats.prompt_cached,
        prompt_eval_duration: stats.prompt_eval_duration,
        eval_count: stats.eval_count,
        eval_duration: stats.eval_duration,
        load_duration: a.load,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_engine::GenerateOptions;

    fn long_answer() -> RequestOptions {
        let generate = GenerateOptions { max_tokens: Some(64), ..GenerateOptions::default() };
        RequestOptions { generate, num_ctx: 512, siblings: None }
    }

    /// The tiny DeepSeek V3 reference model caches, per token, 2 layers × (a latent of 16 and a
    /// rotary key of 8) in f16; `/api/ps` reports it.
    #[tokio::test]
    async fn kv_bytes_per_token_is_what_the_model_caches() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-models/tests/fixtures/hf/deepseek2/model.gguf");
        let config = WorkerConfig { n_threads: Some(1), num_parallel: Some(1), max_queue: 1 };
        let (w, _) =
            WorkerHandle::spawn(&path, config, Arc::new(Metrics::default())).await.map_err(|e| e.message).unwrap();
        assert_eq!(w.kv_bytes_per_token(), 2 * (16 + 8) * 2);
        assert!(w.kv_bytes() >= 96 * crate::options::DEFAULT_NUM_CTX as u64 && w.kv_bytes() % 96 == 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_with_503_and_a_left_client_frees_its_place() {
        let Some(path) = kiln_testdata::model_path(kiln_testdata::SMOLLM2) else { return };
        let config = WorkerConfig { n_threads: Some(1), num_parallel: Some(1), max_queue: 1 };
        let (w, _) =
            WorkerHandle::spawn(&path, config, Arc::new(Metrics::default())).await.map_err(|e| e.message).unwrap();
        let prompt = || Prompt::Raw("Once upon a time".into());
        let first = w.submit(prompt(), long_answer()).map_err(|e| e.message).unwrap();
        let second = w.submit(prompt(), long_answer()).map_err(|e| e.message).unwrap();
        // One running, one waiting: the third is refused at once, nothing is dropped silently.
        let Err(refused) = w.submit(prompt(), long_answer()) else { panic!("a third request was queued") };
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.message.contains("KILN_MAX_QUEUE"), "{}", refused.message);
        // Clients that leave give their places back.
        drop((first, second));
        for _ in 0..200 {
            if !w.busy() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!w.busy(), "abandoned requests still count as pending");
        let mut rx = w.submit(prompt(), long_answer()).map_err(|e| e.message).unwrap();
        let mut got_done = false;
        while let Some(ev) = rx.recv().await {
            if let Event::Done(d) = ev {
                assert!(d.eval_count > 0);
                got_done = true;
            }
        }
        assert!(got_done);
    }
}
