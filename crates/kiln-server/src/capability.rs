//! What a model can do — generate text or compute embeddings — known from its GGUF's
//! architecture before it is loaded, so a request the model cannot serve is a 400 without
//! loading anything.

use crate::error::ApiError;
use crate::registry::ModelEntry;
use kiln_gguf::GgufFile;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// Whether the model is an embedding (encoder) model. Each file is read once; the answer is
/// kept per path and modification time.
pub fn is_embedding_model(model: &ModelEntry) -> Result<bool, ApiError> {
    static KNOWN: OnceLock<Mutex<HashMap<(PathBuf, SystemTime), bool>>> = OnceLock::new();
    let key = (model.path.clone(), model.modified);
    let known = KNOWN.get_or_init(Default::default);
    if let Some(&embedding) = known.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(embedding);
    }
    let file = GgufFile::open(&model.path)
        .map_err(|e| ApiError::internal(format!("reading {}: {e}", model.path.display())))?;
    let embedding = kiln_models::is_encoder(&file);
    known.lock().unwrap_or_else(|e| e.into_inner()).insert(key, embedding);
    Ok(embedding)
}

/// Refuses an embedding model for text generation, as Ollama does (`"name" does not support
/// generate`, or `chat`, with the name as the request gave it).
pub fn require_generation(model: &ModelEntry, requested: &str, what: &str) -> Result<(), ApiError> {
    if is_embedding_model(model)? {
        return Err(ApiError::bad_request(format!("{requested:?} does not support {what}")));
    }
    Ok(())
}

/// Refuses a generative model for embeddings. (Ollama would pool a decoder's hidden states;
/// Kiln computes embeddings only with models trained for them.)
pub fn require_embedding(model: &ModelEntry, requested: &str) -> Result<(), ApiError> {
    if !is_embedding_model(model)? {
        return Err(ApiError::bad_request(format!("{requested:?} does not support embeddings")));
    }
    Ok(())
}
