//! kiln-engine: sequences, KV block management, sampling, chat templates, generation, and
//! embeddings through encoder models.
pub mod block_manager;
pub mod chat_template;
pub mod constraint;
pub mod embedder;
pub mod engine;
pub mod generation;
pub mod logprobs;
pub mod prompt;
pub mod reasoning;
pub mod sampler;
pub mod scheduler;
pub mod sequence;
pub mod tools;

pub use embedder::{EmbedError, EmbedInput, EmbedOptions, Embedder, Embeddings};
pub use engine::{default_threads, DoneReason, Engine, EngineConfig, EngineError, GenerateOptions, GenerationStats};
pub use sequence::Sequence;
