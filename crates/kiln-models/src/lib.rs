//! kiln-models: transformer forward passes over a flat batch of tokens and a paged KV cache.
//!
//! One file per architecture family (`llama.rs`, `gemma3.rs`) reads top to bottom like the
//! math; `decoder.rs` holds the blocks they share. Weights are zero-copy views into the
//! memory-mapped GGUF file.
mod batch;
mod config;
mod decoder;
mod error;
mod gemma3;
mod kv;
mod llama;
mod mla;
mod model;
mod moe;
mod weights;

pub use batch::Batch;
pub use config::{Architecture, ModelConfig};
pub use decoder::Scratch;
pub use error::ModelError;
pub use kv::KvCache;
pub use model::Model;
