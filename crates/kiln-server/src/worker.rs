//! One OS thread per loaded model, owning its `Engine`.
//!
//! The engine is single-threaded state (KV cache, scratch, worker pool), so it never leaves
//! its thread: requests arrive over a channel and are served one after another. Each request
//! carries the sender of its own event stream; when the client goes away the receiver is
//! dropped, the next send fails, and the generation callback returns false, which cancels
//! the generation at the next token.

use crate::error::ApiError;
use crate::options::RequestOptions;
use kiln_engine::chat_template::ChatMessage;
use kiln_engine::prompt::{ChatExtras, PromptFormat};
use kiln_engine::{default_threads, DoneReason, Engine, EngineConfig, EngineError, Sequence};
use kiln_gguf::GgufFile;
use kiln_models::Model;
use kiln_tokenizer::Tokenizer;
use std::collections::HashMap;
use std::path::Path;
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
    pub prompt_eval_duration: Duration,
    pub eval_count: usize,
    pub eval_duration: Duration,
    /// Time spent loading the model (or rebuilding it for a new context size) for this request.
    pub load_duration: Duration,
}

/// What the model thread reports about one request, in order: any number of `Text`, then
/// exactly one `Done` or `Error`.
#[derive(Debug, Clone)]
pub enum Event {
    Text(String),
    Done(Done),
    Error(ApiError),
}

/// A model thread as the rest of the server sees it.
pub struct WorkerHandle {
    jobs: std_mpsc::Sender<Job>,
    /// Requests queued or running (the keep-alive clock only runs while this is zero).
    pending: Arc<std::sync::atomic::AtomicUsize>,
    /// When the last request finished (or the model loaded, or a request touched it).
    idle_since: Arc<std::sync::Mutex<Instant>>,
    /// Context size of the engine as last built (updated by the thread).
    pub num_ctx: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes of the engine's KV cache as last built.
    kv_bytes: Arc<std::sync::atomic::AtomicUsize>,
}

impl WorkerHandle {
    /// Starts the thread and waits until the model is loaded.
    pub async fn spawn(path: &Path, n_threads: Option<usize>) -> Result<(WorkerHandle, Duration), ApiError> {
        let (jobs, rx) = std_mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let num_ctx = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let kv_bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let thread_path = path.to_path_buf();
        let sizes = EngineSizes { num_ctx: Arc::clone(&num_ctx), kv_bytes: Arc::clone(&kv_bytes) };
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let idle_since = Arc::new(std::sync::Mutex::new(Instant::now()));
        let (thread_pending, thread_idle) = (Arc::clone(&pending), Arc::clone(&idle_since));
        let name = format!("kiln-model-{}", path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default());
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let started = Instant::now();
                match ModelThread::load(&thread_path, n_threads, sizes) {
                    Ok(mut state) => {
                        let _ = ready_tx.send(Ok(started.elapsed()));
                        *thread_idle.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                        while let Ok(job) = rx.recv() {
                            state.serve(job);
                            *thread_idle.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                            thread_pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| ApiError::internal(format!("starting the model thread: {e}")))?;
        let load = ready_rx.await.map_err(|_| ApiError::internal("the model thread stopped while loading"))??;
        Ok((WorkerHandle { jobs, pending, idle_since, num_ctx, kv_bytes }, load))
    }

    /// Bytes of the KV cache.
    pub fn kv_bytes(&self) -> u64 {
        self.kv_bytes.load(std::sync::atomic::Ordering::Relaxed) as u64
    }

    /// Whether a request is queued or running.
    pub fn busy(&self) -> bool {
        self.pending.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// When the model last became idle.
    pub fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Restarts the idle clock (a request arrived).
    pub fn touch(&self) {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Queues a request; its events arrive on the returned receiver.
    pub fn submit(&self, prompt: Prompt, options: RequestOptions) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.pending.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.jobs.send(Job { prompt, options, events: tx }).is_err() {
            self.pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            return Err(ApiError::internal("the model thread has stopped"));
        }
        Ok(rx)
    }
}

/// Where the model thread publishes the size of the engine it built.
struct EngineSizes {
    num_ctx: Arc<std::sync::atomic::AtomicUsize>,
    kv_bytes: Arc<std::sync::atomic::AtomicUsize>,
}

impl EngineSizes {
    fn publish(&self, engine: &Engine) {
        self.num_ctx.store(engine.config().num_ctx, std::sync::atomic::Ordering::Relaxed);
        self.kv_bytes.store(engine.kv_bytes(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// Compiled templates a model thread keeps; a handful at most (the model's own and those of
/// the library models sharing its weights), so they are never evicted.
type Formats = HashMap<Option<Arc<str>>, PromptFormat>;

/// State owned by a model thread.
struct ModelThread {
    /// The mapping the weights live in, shared by every engine built over it.
    file: Arc<GgufFile>,
    /// `None` only between dropping an engine and building its replacement.
    engine: Option<Engine>,
    formats: Formats,
    /// Kept between requests so a following request reuses the cached common prefix.
    seq: Sequence,
    n_threads: usize,
    sizes: EngineSizes,
    /// Time spent rebuilding the engine for a new context size, not yet reported (the
    /// request that caused it reports it; the first load is reported by the registry).
    unreported_load: Duration,
}

fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::PromptTooLong { .. } | EngineError::Sampling(_) | EngineError::ZeroContext => {
            ApiError::bad_request(e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// Builds an engine over an open file. `Model::from_file` only records where each weight
/// lies in the mapping, so rebuilding for another context size re-reads no weights.
fn build_engine(file: &Arc<GgufFile>, n_threads: usize, num_ctx: usize) -> Result<Engine, ApiError> {
    let model =
        Model::from_file(Arc::clone(file)).map_err(|e| ApiError::internal(format!("loading the model: {e}")))?;
    let tokenizer =
        Tokenizer::from_gguf(file).map_err(|e| ApiError::internal(format!("reading the tokenizer: {e}")))?;
    let config = EngineConfig { n_threads, num_ctx, ..EngineConfig::default() };
    Engine::new(model, tokenizer, config).map_err(engine_error)
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
            let text = match source {
                Some(t) => Some(&**t),
                None => file.get_str("tokenizer.chat_template").ok().flatten(),
            };
            let format = PromptFormat::new(tok, text)
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

impl ModelThread {
    fn load(path: &Path, n_threads: Option<usize>, sizes: EngineSizes) -> Result<ModelThread, ApiError> {
        let file =
            Arc::new(GgufFile::open(path).map_err(|e| ApiError::internal(format!("opening {}: {e}", path.display())))?);
        let n_threads = n_threads.unwrap_or_else(default_threads).max(1);
        let engine = build_engine(&file, n_threads, crate::options::DEFAULT_NUM_CTX)?;
        engine.model().warm(&mut |_, _| {});
        sizes.publish(&engine);
        Ok(ModelThread {
            file,
            engine: Some(engine),
            formats: Formats::new(),
            seq: Sequence::default(),
            n_threads,
            sizes,
            unreported_load: Duration::ZERO,
        })
    }

    /// Rebuilds the engine when a request asks for another context size. The old engine
    /// (and its KV cache) is dropped first, so two caches never exist at once.
    fn ensure_num_ctx(&mut self, num_ctx: usize) -> Result<(), ApiError> {
        if self.engine.as_ref().map(|e| e.config().num_ctx) != Some(num_ctx) {
            let started = Instant::now();
            self.seq = Sequence::default();
            self.engine = None;
            let engine = build_engine(&self.file, self.n_threads, num_ctx)?;
            self.sizes.publish(&engine);
            self.engine = Some(engine);
            self.unreported_load += started.elapsed();
        }
        Ok(())
    }

    fn serve(&mut self, job: Job) {
        // A client that left while the request waited in the queue costs nothing.
        if job.events.is_closed() {
            return;
        }
        let events = job.events.clone();
        let result = self.run(job);
        match result {
            Ok(done) => {
                let _ = events.send(Event::Done(done));
            }
            Err(e) => {
                // A failed step may leave the sequence half-written; start the next one clean.
                if let Some(engine) = self.engine.as_mut() {
                    engine.release(&mut self.seq);
                }
                self.seq = Sequence::default();
                let _ = events.send(Event::Error(e));
            }
        }
    }

    fn run(&mut self, job: Job) -> Result<Done, ApiError> {
        self.ensure_num_ctx(job.options.num_ctx)?;
        let Some(engine) = self.engine.as_mut() else {
            return Err(ApiError::internal("the model is not loaded"));
        };
        let tokens = prompt_tokens(&self.file, engine.tokenizer(), &mut self.formats, &job.prompt)?;
        if tokens.is_empty() {
            return Err(ApiError::bad_request("the prompt is empty"));
        }
        engine.set_tokens(&mut self.seq, &tokens).map_err(engine_error)?;
        let events = &job.events;
        let stats = engine
            .generate(&mut self.seq, &job.options.generate, &mut |text| {
                events.send(Event::Text(text.to_string())).is_ok()
            })
            .map_err(engine_error)?;
        Ok(Done {
            done_reason: stats.done_reason,
            prompt_tokens: tokens.len(),
            prompt_eval_duration: stats.prompt_eval_duration,
            eval_count: stats.eval_count,
            eval_duration: stats.eval_duration,
            load_duration: std::mem::take(&mut self.unreported_load),
        })
    }
}
