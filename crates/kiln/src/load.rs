//! Loading a model file with visible progress.

use anyhow::{Context, Result};
use kiln_engine::{default_threads, Engine, EngineConfig};
use kiln_models::Model;
use kiln_tokenizer::Tokenizer;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Opens the model and its tokenizer, drawing a progress line on stderr while the weights
/// are paged in.
pub fn load_model(path: &Path) -> Result<(Model, Tokenizer, Duration)> {
    let start = Instant::now();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_pct = u64::MAX;
    let mut progress = |done: u64, total: u64| {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if interactive && pct != last_pct {
            last_pct = pct;
            eprint!("\rloading {name} {pct:3}%");
            let _ = std::io::stderr().flush();
        }
    };
    let model = Model::load(path, &mut progress).with_context(|| format!("loading model {}", path.display()))?;
    if interactive {
        eprint!("\r\x1b[2K");
    }
    let tokenizer =
        Tokenizer::from_gguf(model.file()).with_context(|| format!("reading the tokenizer of {}", path.display()))?;
    Ok((model, tokenizer, start.elapsed()))
}

/// An engine over a freshly loaded model.
pub fn load_engine(path: &Path, threads: Option<usize>, num_ctx: usize) -> Result<(Engine, Duration)> {
    let (model, tokenizer, took) = load_model(path)?;
    let config =
        EngineConfig { n_threads: threads.unwrap_or_else(default_threads).max(1), num_ctx, ..EngineConfig::default() };
    Ok((Engine::new(model, tokenizer, config)?, took))
}
