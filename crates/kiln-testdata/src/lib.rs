//! Where the tests find the real models that `scripts/fetch-models.sh` fetches.
//!
//! The directory is `$KILN_TEST_MODELS`, else `$KILN_CACHE/models`, else
//! `~/.cache/kiln/models`. A missing model fails the test with the command that fetches it,
//! unless `KILN_SKIP_MODEL_TESTS` is set: a suite that silently skips would prove nothing.

use std::path::PathBuf;

/// The default model: llama architecture, GPT-2-style BPE, Q4_1 weights.
pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// gemma3 architecture, SentencePiece vocabulary, Q4_K/Q5_0/Q6_K/Q8_0 weights.
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

/// The embedding model: all-MiniLM-L6-v2 (bert architecture, WordPiece vocabulary) as an F32
/// GGUF, converted from the Hugging Face directory `scripts/fetch-models.sh minilm` fetches
/// by `scripts/make-minilm-gguf.sh`.
pub const MINILM: &str = "all-MiniLM-L6-v2.gguf";

/// The F32 GGUF of all-MiniLM-L6-v2 (see [`MINILM`]); every test that needs it finds it here,
/// so how the file is made can change in one place (`scripts/make-minilm-gguf.sh`).
pub fn minilm_gguf() -> Option<PathBuf> {
    let path = models_dir().join(MINILM);
    if !path.is_file() && std::env::var_os("KILN_SKIP_MODEL_TESTS").is_none() {
        panic!(
            "test model {} not found: run scripts/make-minilm-gguf.sh (and set KILN_TEST_MODELS if the models are \
             elsewhere), or set KILN_SKIP_MODEL_TESTS=1 to skip tests that need real models",
            path.display()
        );
    }
    model_path(MINILM)
}

/// Directory holding the test models.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KILN_TEST_MODELS") {
        return PathBuf::from(dir);
    }
    if let Some(cache) = std::env::var_os("KILN_CACHE") {
        return PathBuf::from(cache).join("models");
    }
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kiln/models")
}

/// Path of model `file`, or `None` (with a note) when it is missing and model tests are
/// skipped. Panics when it is missing otherwise.
pub fn model_path(file: &str) -> Option<PathBuf> {
    let path = models_dir().join(file);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("KILN_SKIP_MODEL_TESTS").is_some() {
        eprintln!("skipping: {} not found (KILN_SKIP_MODEL_TESTS is set)", path.display());
        return None;
    }
    panic!(
        "test model {} not found: run scripts/fetch-models.sh (and set KILN_TEST_MODELS if the models are elsewhere), \
         or set KILN_SKIP_MODEL_TESTS=1 to skip tests that need real models",
        path.display()
    );
}

/// A fresh directory under the system's temporary directory, removed when dropped. Its name
/// carries `tag`, the process id and a counter, so parallel tests never share one.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("kiln-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
