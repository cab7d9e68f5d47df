//! A library model read for serving: where its weights are and what its text layers say.

use crate::error::LibraryError;
use crate::manifest::{media, ModelConfigBlob};
use crate::store::{LibraryModel, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// One message of a Modelfile's few-shot history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// Everything the server needs to run a library model besides the weights themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelSpec {
    pub weights: PathBuf,
    /// Prompt template (Go template or Jinja); `None`: the GGUF's own chat template.
    pub template: Option<String>,
    pub system: Option<String>,
    /// PARAMETERs, typed as in `parameters`: defaults under a request's options.
    pub params: Map<String, Value>,
    pub messages: Vec<Message>,
    pub licenses: Vec<String>,
    pub config: ModelConfigBlob,
    /// Layers Kiln cannot apply yet (LoRA adapters, vision projectors), by media type.
    pub unsupported: Vec<String>,
}

impl Store {
    /// Reads a model's text layers. The weights are only located, not opened.
    pub fn spec(&self, model: &LibraryModel) -> Result<ModelSpec, LibraryError> {
        let bad = |reason: String| LibraryError::Manifest { name: model.name.to_string(), reason };
        let weights = model.manifest.layer(media::MODEL).ok_or_else(|| bad("it has no model layer".into()))?;
        let mut spec = ModelSpec { weights: self.blob_path(&weights.digest), ..ModelSpec::default() };
        for layer in &model.manifest.layers {
            let text = || self.read_blob_text(&layer.digest);
            match layer.media_type.as_str() {
                media::MODEL => {}
                media::TEMPLATE => spec.template = Some(text()?),
                media::SYSTEM => spec.system = Some(text()?),
                media::LICENSE => spec.licenses.push(text()?),
                media::PARAMS => {
                    spec.params = serde_json::from_str(&text()?).map_err(|e| bad(format!("params layer: {e}")))?
                }
                media::MESSAGES => {
                    spec.messages = serde_json::from_str(&text()?).map_err(|e| bad(format!("messages layer: {e}")))?
                }
                media::ADAPTER | media::PROJECTOR => spec.unsupported.push(layer.media_type.clone()),
                // Layers of newer formats (per-tensor blobs, drafts) are not needed to run a GGUF.
                _ => {}
            }
        }
        if self.has_blob(&model.manifest.config.digest) {
            let text = self.read_blob_text(&model.manifest.config.digest)?;
            spec.config = serde_json::from_str(&text).unwrap_or_default();
        }
        Ok(spec)
    }
}
