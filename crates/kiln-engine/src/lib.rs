//! kiln-engine: sequences, KV block management, sampling, chat templates, generation.
pub mod chat_template;
pub mod sampler;
