//! kiln-models: transformer forward passes over a flat batch of tokens and a paged KV cache.
//!
//! One file per architecture family (`llama.rs`, `gemma3.rs`) reads top to bottom like the
//! math; `decoder.rs` holds the blocks they share. Weights are zero-copy views into the
//! memory-mapped GGUF file. Encoders (BERT, Nomic BERT: embedding models) take a dense path
//! of their own in `encoder.rs`.
mod batch;
mod config;
mod decoder;
mod encoder;
mod encoder_config;
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
pub use encoder::Encoder;
pub use encoder_config::{is_encoder, EncoderArch, EncoderConfig, Pooling};
pub use error::ModelError;
pub use kv::KvCache;
pub use model::Model;
