use kiln_gguf::{GgmlType, GgufError};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("architecture '{0}' is not supported (supported: llama, gemma3)")]
    UnsupportedArchitecture(String),
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("metadata key '{key}': {problem}")]
    BadMetadata { key: String, problem: String },
    #[error("tensor '{0}' is missing")]
    MissingTensor(String),
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    BadShape { name: String, expected: Vec<u64>, found: Vec<u64> },
    #[error("tensor '{name}' has type {ty}, which Kiln cannot compute with yet")]
    UnsupportedType { name: String, ty: GgmlType },
    #[error("batch is invalid: {0}")]
    BadBatch(String),
}
