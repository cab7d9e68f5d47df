//! Which models exist (the library, plus GGUF files named on the command line), what each
//! is (its spec: weights, template, parameters...), and which are loaded (one model thread
//! each, within the caps on loaded models and memory).

use crate::error::ApiError;
use crate::keep_alive::KeepAlive;
use crate::metrics::{Gauges, Metrics};
use crate::worker::{ChatPrompt, Prompt, WorkerConfig, WorkerHandle};
use kiln_engine::chat_template::ChatMessage;
use kiln_engine::prompt::ChatExtras;
use kiln_engine::tools::ToolChoice;
use kiln_library::spec::ModelSpec;
use kiln_library::{LibraryError, ModelName, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A model the server can serve.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// As clients see it: `smollm2:latest`, `me/mine:v1`, `hf.co/org/repo:Q4_K_M`.
    pub name: String,
    /// The GGUF weights.
    pub path: PathBuf,
    /// Bytes of the weights and the text layers.
    pub size: u64,
    pub modified: SystemTime,
    /// The manifest's sha256 for library models; `None` for files given on the command line,
    /// which are hashed when a client first asks.
    pub digest: Option<String>,
    pub spec: Arc<ModelSpec>,
    /// The namespace, for OpenAI's `owned_by`.
    pub owner: String,
}

impl ModelEntry {
    /// The name with its tag, as Ollama shows it.
    pub fn tagged(&self) -> String {
        self.name.clone()
    }

    /// The model's few-shot MESSAGEs as chat messages.
    pub fn few_shot(&self) -> Vec<ChatMessage> {
        self.spec.messages.iter().map(|m| ChatMessage::new(m.role.clone(), m.content.clone())).collect()
    }

    /// A conversation through this model's template: its few-shot messages in front, and its
    /// system prompt first unless the conversation brings its own.
    pub fn chat_prompt(&self, conversation: Vec<ChatMessage>, extras: ChatExtras, tool_choice: ToolChoice) -> Prompt {
        let mut messages = self.few_shot();
        let has_system = conversation.first().is_some_and(|m| m.role == "system");
        if let Some(system) = self.spec.system.clone().filter(|s| !s.is_empty() && !has_system) {
            messages.insert(0, ChatMessage::new("system", system));
        }
        messages.extend(conversation);
        Prompt::Chat(ChatPrompt { messages, template: self.spec.template.clone().map(Into::into), extras, tool_choice })
    }
}

/// A loaded model: its thread and how long it may stay idle.
struct Loaded {
    entry: ModelEntry,
    worker: Arc<WorkerHandle>,
    keep_alive: KeepAlive,
}

impl Loaded {
    /// When the model unloads if nothing else arrives (`None`: never).
    fn expires(&self) -> Option<Instant> {
        self.keep_alive.map(|k| self.worker.idle_since() + k)
    }
}

/// How many models may be loaded at once and how much memory they may take together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadLimits {
    pub max_models: usize,
    /// Bytes of weights plus KV caches.
    pub max_bytes: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits { max_models: 3, max_bytes: u64::MAX }
    }
}

/// Models known to the server and the threads of those loaded.
pub struct Registry {
    store: Option<Arc<Store>>,
    named: Vec<(String, PathBuf)>,
    workers: WorkerConfig,
    metrics: Arc<Metrics>,
    loaded: tokio::sync::Mutex<HashMap<PathBuf, Loaded>>,
    /// How long an idle model stays loaded unless a request says otherwise.
    default_keep_alive: KeepAlive,
    limits: LoadLimits,
    /// Digests of command-line files by (path, size, mtime): hashing a large file takes
    /// seconds, so it is done once per version of the file, when a client first asks.
    digests: Mutex<HashMap<(PathBuf, u64, SystemTime), String>>,
}

/// The name a command-line model is shown under.
fn tag_name(name: &str) -> String {
    if name.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn named_entry(name: &str, path: &Path) -> Option<ModelEntry> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| ModelEntry {
        name: tag_name(name),
        path: path.to_path_buf(),
        size: meta.len(),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        digest: None,
        spec: Arc::new(ModelSpec { weights: path.to_path_buf(), ..ModelSpec::default() }),
        owner: "library".into(),
    })
}

fn library_entry(store: &Store, m: kiln_library::LibraryModel) -> Result<ModelEntry, LibraryError> {
    let spec = store.spec(&m)?;
    Ok(ModelEntry {
        name: m.name.to_string(),
        path: spec.weights.clone(),
        size: m.manifest.total_size(),
        modified: m.modified,
        digest: Some(m.digest.hex()),
        spec: Arc::new(spec),
        owner: m.name.namespace.clone(),
    })
}

/// A library error as the API reports it.
pub fn library_error(e: LibraryError) -> ApiError {
    match e {
        LibraryError::NotFound(name) => ApiError::model_not_found(&name),
        LibraryError::Name(_) | LibraryError::DigestSyntax(_) | LibraryError::DigestMismatch { .. } => {
            ApiError::bad_request(e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

impl Registry {
    pub fn new(store: Option<Arc<Store>>, named: Vec<(String, PathBuf)>, n_threads: Option<usize>) -> Registry {
        Registry {
            store,
            named,
            workers: WorkerConfig { n_threads, num_parallel: None, max_queue: crate::worker::DEFAULT_MAX_QUEUE },
            metrics: Arc::new(Metrics::default()),
            loaded: tokio::sync::Mutex::new(HashMap::new()),
            default_keep_alive: Some(crate::keep_alive::DEFAULT),
            limits: LoadLimits::default(),
            digests: Mutex::new(HashMap::new()),
        }
    }

    /// The same registry with another default keep-alive.
    pub fn with_keep_alive(mut self, keep_alive: KeepAlive) -> Registry {
        self.default_keep_alive = keep_alive;
        self
    }

    pub fn with_limits(mut self, limits: LoadLimits) -> Registry {
        self.limits = limits;
        self
    }

    /// The same registry with another batch size and queue bound for its model threads.
    pub fn with_parallel(mut self, num_parallel: Option<usize>, max_queue: usize) -> Registry {
        self.workers.num_parallel = num_parallel;
        self.workers.max_queue = max_queue;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What the loaded models hold now, for `/metrics`.
    pub async fn gauges(&self) -> Gauges {
        let loaded = self.loaded.lock().await;
        let mut g = Gauges { models_loaded: loaded.len() as u64, ..Gauges::default() };
        for l in loaded.values() {
            let s = l.worker.stats();
            g.queued += s.waiting as u64;
            g.running += s.running as u64;
            g.kv_blocks_used += s.blocks_used as u64;
            g.kv_blocks_free += s.blocks_free as u64;
            g.prefix_hits += s.prefix_hits;
            g.prefix_lookups += s.prefix_lookups;
        }
        g
    }

    /// The model library, when the server has one.
    pub fn store(&self) -> Result<&Arc<Store>, ApiError> {
        self.store.as_ref().ok_or_else(|| ApiError::bad_request("this server has no model library"))
    }

    /// Every model, sorted by name. The library is read on each call, so models pulled or
    /// created by anyone show up; names given on the command line win over library names.
    pub fn list(&self) -> Vec<ModelEntry> {
        let mut out: Vec<ModelEntry> = self.named.iter().filter_map(|(n, p)| named_entry(n, p)).collect();
        if let Some(store) = &self.store {
            for m in store.list() {
                let shown = m.name.to_string();
                if out.iter().any(|e| e.name.eq_ignore_ascii_case(&shown)) {
                    continue;
                }
                match library_entry(store, m) {
                    Ok(e) => out.push(e),
                    Err(e) => eprintln!("kiln: skipping {shown}: {e}"),
                }
            }
        }
        out.sort_by_key(|m| m.name.to_lowercase());
        out
    }

    /// The model a request names, with or without the `:latest` tag.
    pub fn find(&self, name: &str) -> Result<ModelEntry, ApiError> {
        let wanted = tag_name(name);
        if let Some(e) = self.named.iter().find(|(n, _)| tag_name(n) == wanted).and_then(|(n, p)| named_entry(n, p)) {
            return Ok(e);
        }
        let not_found = || ApiError::model_not_found(name);
        let store = self.store.as_ref().ok_or_else(not_found)?;
        let parsed = ModelName::parse(name).map_err(|_| not_found())?;
        let model = store.find(&parsed).map_err(|e| match e {
            LibraryError::NotFound(_) => not_found(),
            other => library_error(other),
        })?;
        library_entry(store, model).map_err(library_error)
    }

    /// The model's thread, loading the model on first use, and its keep-alive from now on
    /// (`None` in the request: the server's default). Returns the load time when this call
    /// loaded it. Loads are serialised, so two first requests do not load twice. To stay
    /// within the limits, idle models are unloaded first, least recently used first; when
    /// every loaded model is busy, the load waits for one to finish.
    pub async fn worker(
        &self,
        model: &ModelEntry,
        keep_alive: Option<KeepAlive>,
    ) -> Result<(Arc<WorkerHandle>, Duration), ApiError> {
        let keep_alive = keep_alive.unwrap_or(self.default_keep_alive);
        loop {
            let mut loaded = self.loaded.lock().await;
            if let Some(l) = loaded.get_mut(&model.path) {
                // Names sharing these weights share the thread; `/api/ps` shows the last one used.
                l.entry = model.clone();
                l.keep_alive = keep_alive;
                l.worker.touch();
                return Ok((Arc::clone(&l.worker), Duration::ZERO));
            }
            if model.size > self.limits.max_bytes {
                return Err(ApiError::internal(format!(
                    "model '{}' needs {} bytes but the memory limit (KILN_MAX_MEMORY) is {}",
                    model.name, model.size, self.limits.max_bytes
                )));
            }
            if make_room(&mut loaded, model.size, self.limits) {
                let (w, took) = WorkerHandle::spawn(&model.path, self.workers, Arc::clone(&self.metrics)).await?;
                let w = Arc::new(w);
                loaded.insert(model.path.clone(), Loaded { entry: model.clone(), worker: Arc::clone(&w), keep_alive });
                return Ok((w, took));
            }
            drop(loaded);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Forgets a model thread (it stopped, or its keep-alive ran out): the thread ends once
    /// its queued requests are done, and the next request loads the model again.
    pub async fn forget(&self, model: &ModelEntry) {
        self.loaded.lock().await.remove(&model.path);
    }

    /// Unloads `model` now if it is loaded and idle; true when it is not loaded afterwards.
    pub async fn unload(&self, model: &ModelEntry) -> bool {
        let mut loaded = self.loaded.lock().await;
        match loaded.get(&model.path) {
            Some(l) if l.worker.busy() => false,
            _ => {
                loaded.remove(&model.path);
                true
            }
        }
    }

    /// Unloads the idle models whose keep-alive has run out.
    pub async fn unload_expired(&self) {
        let now = Instant::now();
        self.loaded.lock().await.retain(|_, l| l.worker.busy() || l.expires().is_none_or(|t| t > now));
    }

    /// Loaded models, their threads and when they unload (`None`: never).
    pub async fn loaded(&self) -> Vec<(ModelEntry, Arc<WorkerHandle>, Option<Instant>)> {
        let mut v: Vec<_> =
            self.loaded.lock().await.values().map(|l| (l.entry.clone(), Arc::clone(&l.worker), l.expires())).collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    /// The model's digest (blocking for command-line files: call from a blocking task).
    pub fn digest(&self, model: &ModelEntry) -> Result<String, ApiError> {
        if let Some(d) = &model.digest {
            return Ok(d.clone());
        }
        let key = (model.path.clone(), model.size, model.modified);
        if let Some(d) = self.digests.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(d);
        }
        let d = kiln_library::store::hash_file(&model.path).map_err(library_error)?.hex();
        if let Ok(mut m) = self.digests.lock() {
            m.insert(key, d.clone());
        }
        Ok(d)
    }
}

/// Bytes a loaded model holds: its weights and its KV cache.
fn footprint(l: &Loaded) -> u64 {
    l.entry.size + l.worker.kv_bytes()
}

/// Unloads idle models, least recently used first, until one more model of `size` bytes
/// fits. False when it cannot fit because the models in the way are busy.
fn make_room(loaded: &mut HashMap<PathBuf, Loaded>, size: u64, limits: LoadLimits) -> bool {
    loop {
        let used: u64 = loaded.values().map(footprint).sum();
        if loaded.len() < limits.max_models && used.saturating_add(size) <= limits.max_bytes {
            return true;
        }
        let victim = loaded
            .iter()
            .filter(|(_, l)| !l.worker.busy())
            .min_by_key(|(_, l)| l.worker.idle_since())
            .map(|(p, _)| p.clone());
        match victim {
            Some(p) => {
                loaded.remove(&p);
            }
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use kiln_testdata::TempDir;

    #[test]
    fn command_line_names_match_with_or_without_latest() {
        let dir = TempDir::new("registry");
        std::fs::create_dir_all(&dir.0).unwrap();
        let file = dir.0.join("elsewhere.bin");
        std::fs::write(&file, b"x").unwrap();
        let store = Arc::new(Store::open(dir.0.join("lib")).unwrap());
        let r = Registry::new(Some(store), vec![("named".into(), file)], None);
        let names: Vec<String> = r.list().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["named:latest"]);
        assert_eq!(r.find("named").unwrap().name, "named:latest");
        assert_eq!(r.find("named:latest").unwrap().size, 1);
        assert_eq!(r.find("nope").unwrap_err().message, "model 'nope' not found");
        assert_eq!(r.find("bad name!").unwrap_err().message, "model 'bad name!' not found");
        let d = r.digest(&r.find("named").unwrap()).unwrap();
        assert_eq!(d, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
    }

    fn two_models(limits: LoadLimits) -> Option<(Registry, ModelEntry, ModelEntry)> {
        let smol = kiln_testdata::model_path(kiln_testdata::SMOLLM2)?;
        let gemma = kiln_testdata::model_path(kiln_testdata::GEMMA3)?;
        let r = Registry::new(None, vec![("smol".into(), smol), ("gemma".into(), gemma)], Some(1)).with_limits(limits);
        let (a, b) = (r.find("smol").unwrap(), r.find("gemma").unwrap());
        Some((r, a, b))
    }

    async fn loaded_names(r: &Registry) -> Vec<String> {
        r.loaded().await.into_iter().map(|(e, _, _)| e.name).collect()
    }

    #[tokio::test]
    async fn loading_past_the_model_cap_unloads_the_least_recently_used() {
        let Some((r, smol, gemma)) = two_models(LoadLimits { max_models: 1, max_bytes: u64::MAX }) else { return };
        r.worker(&smol, None).await.map_err(|e| e.message).unwrap();
        assert_eq!(loaded_names(&r).await, ["smol:latest"]);
        r.worker(&gemma, None).await.map_err(|e| e.message).unwrap();
        assert_eq!(loaded_names(&r).await, ["gemma:latest"]);
    }

    #[tokio::test]
    async fn the_memory_cap_counts_weights_and_kv_cache() {
        let Some((r, smol, gemma)) = two_models(LoadLimits { max_models: 8, max_bytes: u64::MAX }) else { return };
        let (w, _) = r.worker(&smol, None).await.map_err(|e| e.message).unwrap();
        let smol_footprint = smol.size + w.kv_bytes();
        assert!(w.kv_bytes() > 0);
        drop(r);
        // Room for SmolLM2 and its cache, not for Gemma besides: loading Gemma unloads SmolLM2.
        let limit = smol_footprint + gemma.size / 2;
        let Some((r, smol, gemma)) = two_models(LoadLimits { max_models: 8, max_bytes: limit }) else { return };
        r.worker(&smol, None).await.map_err(|e| e.message).unwrap();
        r.worker(&gemma, None).await.map_err(|e| e.message).unwrap();
        assert_eq!(loaded_names(&r).await, ["gemma:latest"]);
        // A model bigger than the whole limit is refused with the reason.
        let tiny = Registry::new(None, vec![("smol".into(), smol.path.clone())], Some(1))
            .with_limits(LoadLimits { max_models: 8, max_bytes: 1 << 20 });
        let Err(err) = tiny.worker(&tiny.find("smol").unwrap(), None).await else { panic!("loaded past the limit") };
        assert!(err.message.contains("KILN_MAX_MEMORY"), "{}", err.message);
    }
}
