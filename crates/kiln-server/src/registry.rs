//! Which models exist (GGUF files in a directory, or named on the command line), what they
//! are (read from GGUF metadata), and which are loaded (one model thread each).

use crate::error::ApiError;
use crate::keep_alive::KeepAlive;
use crate::worker::WorkerHandle;
use kiln_gguf::{GgufFile, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A model file the server can serve.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// The file stem, or the name given with `--model NAME=PATH`.
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
}

impl ModelEntry {
    /// The name as Ollama shows it, with its tag.
    pub fn tagged(&self) -> String {
        if self.name.contains(':') {
            self.name.clone()
        } else {
            format!("{}:latest", self.name)
        }
    }
}

/// What the GGUF metadata says about a model, for `/api/tags`, `/api/show` and `/api/ps`.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub architecture: String,
    pub parameter_count: u64,
    pub quantization: String,
    pub template: Option<String>,
    pub license: Option<String>,
    /// Every scalar metadata entry (arrays such as the vocabulary are left out, as Ollama
    /// does without `verbose`).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl ModelInfo {
    /// Ollama's `details` object.
    pub fn details(&self) -> serde_json::Value {
        serde_json::json!({
            "parent_model": "",
            "format": "gguf",
            "family": self.architecture,
            "families": [self.architecture],
            "parameter_size": parameter_size(self.parameter_count),
            "quantization_level": self.quantization,
        })
    }
}

/// "135M", "1.2B": how Ollama writes a parameter count.
pub fn parameter_size(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0}M", n / 1e6)
    } else {
        format!("{:.0}K", n / 1e3)
    }
}

/// llama.cpp's `general.file_type` names.
fn file_type_name(ft: u64) -> Option<&'static str> {
    Some(match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

fn scalar_json(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::Array(_) => return None,
        Value::String(s) => serde_json::Value::from(s.as_str()),
        Value::Bool(b) => serde_json::Value::from(*b),
        Value::F32(_) | Value::F64(_) => serde_json::Value::from(v.as_f64()?),
        other => match other.as_i64() {
            Some(i) => serde_json::Value::from(i),
            None => serde_json::Value::from(other.as_u64()?),
        },
    })
}

/// Reads a model's description from its metadata (no weights are touched).
pub fn describe(path: &Path) -> Result<ModelInfo, ApiError> {
    let file = GgufFile::open(path).map_err(|e| ApiError::internal(format!("reading {}: {e}", path.display())))?;
    let get_str = |k: &str| file.get_str(k).ok().flatten().map(str::to_string);
    let architecture = get_str("general.architecture").unwrap_or_else(|| "unknown".into());
    let parameter_count: u64 = file.tensors().iter().map(|t| t.n_elements()).sum();
    let quantization = file
        .get_u64("general.file_type")
        .ok()
        .flatten()
        .and_then(file_type_name)
        .map(str::to_string)
        .unwrap_or_else(|| dominant_type(&file));
    let mut metadata = serde_json::Map::new();
    for (k, v) in file.metadata() {
        if let Some(j) = scalar_json(v) {
            metadata.insert(k.clone(), j);
        }
    }
    metadata.insert("general.parameter_count".into(), parameter_count.into());
    Ok(ModelInfo {
        architecture,
        parameter_count,
        quantization,
        template: get_str("tokenizer.chat_template"),
        license: get_str("general.license"),
        metadata,
    })
}

/// The tensor type holding most of the weights, for files without `general.file_type`.
fn dominant_type(file: &GgufFile) -> String {
    let mut bytes: HashMap<&'static str, u64> = HashMap::new();
    for t in file.tensors() {
        *bytes.entry(t.ggml_type.name()).or_default() += t.size;
    }
    bytes.into_iter().max_by_key(|(_, b)| *b).map(|(n, _)| n.to_uppercase()).unwrap_or_default()
}

/// sha256 of a file, as Ollama's `digest` field.
fn sha256_file(path: &Path) -> Result<String, ApiError> {
    let mut f =
        std::fs::File::open(path).map_err(|e| ApiError::internal(format!("reading {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ApiError::internal(format!("reading {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
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

/// Models known to the server and the threads of those loaded.
pub struct Registry {
    models_dir: Option<PathBuf>,
    named: Vec<(String, PathBuf)>,
    n_threads: Option<usize>,
    loaded: tokio::sync::Mutex<HashMap<PathBuf, Loaded>>,
    /// How long an idle model stays loaded unless a request says otherwise.
    default_keep_alive: KeepAlive,
    /// Digests by (path, size, mtime): hashing a large file takes seconds, so it is done once
    /// per version of the file, when a client first asks.
    digests: Mutex<HashMap<(PathBuf, u64, SystemTime), String>>,
}

fn entry(name: String, path: PathBuf) -> Option<ModelEntry> {
    let meta = std::fs::metadata(&path).ok()?;
    meta.is_file().then(|| ModelEntry {
        name,
        size: meta.len(),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        path,
    })
}

impl Registry {
    pub fn new(models_dir: Option<PathBuf>, named: Vec<(String, PathBuf)>, n_threads: Option<usize>) -> Registry {
        Registry {
            models_dir,
            named,
            n_threads,
            loaded: tokio::sync::Mutex::new(HashMap::new()),
            default_keep_alive: Some(crate::keep_alive::DEFAULT),
            digests: Mutex::new(HashMap::new()),
        }
    }

    /// The same registry with another default keep-alive.
    pub fn with_keep_alive(mut self, keep_alive: KeepAlive) -> Registry {
        self.default_keep_alive = keep_alive;
        self
    }

    /// Every model, sorted by name. The directory is read on each call, so files added while
    /// the server runs show up; names given on the command line win over file stems.
    pub fn list(&self) -> Vec<ModelEntry> {
        let mut out: Vec<ModelEntry> = self.named.iter().filter_map(|(n, p)| entry(n.clone(), p.clone())).collect();
        if let Some(dir) = &self.models_dir {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.extension().is_some_and(|x| x == "gguf") {
                        let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else { continue };
                        if out.iter().all(|m| m.name != stem) {
                            out.extend(entry(stem, path));
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The model a request names, with or without the `:latest` tag.
    pub fn find(&self, name: &str) -> Result<ModelEntry, ApiError> {
        let bare = name.strip_suffix(":latest").unwrap_or(name);
        self.list()
            .into_iter()
            .find(|m| m.name == bare || m.name == name)
            .ok_or_else(|| ApiError::model_not_found(name))
    }

    /// The model's thread, loading the model on first use, and its keep-alive from now on
    /// (`None` in the request: the server's default). Returns the load time when this call
    /// loaded it. Loads are serialised, so two first requests do not load twice.
    pub async fn worker(
        &self,
        model: &ModelEntry,
        keep_alive: Option<KeepAlive>,
    ) -> Result<(Arc<WorkerHandle>, Duration), ApiError> {
        let keep_alive = keep_alive.unwrap_or(self.default_keep_alive);
        let mut loaded = self.loaded.lock().await;
        if let Some(l) = loaded.get_mut(&model.path) {
            l.keep_alive = keep_alive;
            l.worker.touch();
            return Ok((Arc::clone(&l.worker), Duration::ZERO));
        }
        let (w, took) = WorkerHandle::spawn(&model.path, self.n_threads).await?;
        let w = Arc::new(w);
        loaded.insert(model.path.clone(), Loaded { entry: model.clone(), worker: Arc::clone(&w), keep_alive });
        Ok((w, took))
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

    /// The file's sha256 (blocking: call from a blocking task).
    pub fn digest(&self, model: &ModelEntry) -> Result<String, ApiError> {
        let key = (model.path.clone(), model.size, model.modified);
        if let Some(d) = self.digests.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(d);
        }
        let d = sha256_file(&model.path)?;
        if let Ok(mut m) = self.digests.lock() {
            m.insert(key, d.clone());
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sizes_read_like_ollama() {
        assert_eq!(parameter_size(134_515_008), "135M");
        assert_eq!(parameter_size(268_098_176), "268M");
        assert_eq!(parameter_size(1_235_814_400), "1.2B");
    }

    #[test]
    fn names_match_with_or_without_latest() {
        let dir = std::env::temp_dir().join(format!("kiln-registry-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tiny.gguf"), b"x").unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        let other = dir.join("elsewhere.bin");
        std::fs::write(&other, b"xy").unwrap();
        let r = Registry::new(Some(dir.clone()), vec![("named".into(), other)], None);
        let names: Vec<String> = r.list().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["named", "tiny"]);
        assert_eq!(r.find("tiny").unwrap().name, "tiny");
        assert_eq!(r.find("tiny:latest").unwrap().tagged(), "tiny:latest");
        assert_eq!(r.find("named").unwrap().size, 2);
        assert_eq!(r.find("nope").unwrap_err().message, "model 'nope' not found");
        let d = r.digest(&r.find("tiny").unwrap()).unwrap();
        assert_eq!(d, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
