//! Errors raised while building a tokenizer from model metadata.

/// Why a tokenizer could not be built. Each variant names the metadata key or value at fault so
/// a broken or unsupported model file can be diagnosed from the message alone.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required metadata key is absent.
    #[error("missing tokenizer metadata key `{0}`")]
    MissingKey(&'static str),
    /// A metadata key holds a value of the wrong type.
    #[error("tokenizer metadata key `{key}` has the wrong type: expected {expected}")]
    WrongType { key: &'static str, expected: &'static str },
    /// The GGUF reader failed while reading a key.
    #[error("cannot read tokenizer metadata key `{key}`: {message}")]
    Gguf { key: &'static str, message: String },
    /// A per-token array is shorter than the token list.
    #[error("`{key}` has {found} entries but `tokenizer.ggml.tokens` has {expected}")]
    LengthMismatch { key: &'static str, expected: usize, found: usize },
    /// The vocabulary is empty.
    #[error("`tokenizer.ggml.tokens` is empty")]
    EmptyVocab,
    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement.
    #[error("unsupported tokenizer model `{0}` in `tokenizer.ggml.model` (supported: llama, gpt2, gemma4, bert)")]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not implement.
    #[error("unsupported pre-tokenizer `{0}` in `tokenizer.ggml.pre`")]
    UnsupportedPreTokenizer(String),
    /// A pre-tokenizer expression failed to compile.
    #[error("pre-tokenizer expression `{pattern}` does not compile: {message}")]
    Regex { pattern: String, message: String },
}
