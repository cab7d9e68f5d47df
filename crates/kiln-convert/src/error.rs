//! Why a conversion failed. Each variant names the file, key or tensor at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{} is missing: {why}", path.display())]
    MissingFile { path: PathBuf, why: &'static str },

    #[error("{}: invalid JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },

    /// A safetensors file whose header is truncated, not JSON, or describes data the file
    /// does not hold.
    #[error("{}: not a valid safetensors file: {message}", path.display())]
    Safetensors { path: PathBuf, message: String },

    #[error("architecture {0} is not supported for import (supported: {list})", list = crate::arch::SUPPORTED.join(", "))]
    UnknownArchitecture(String),

    #[error("config.json: {key} is missing")]
    MissingConfig { key: String },

    #[error("config.json: {key} {message}")]
    BadConfig { key: String, message: String },

    #[error("tensor {0} is missing from the checkpoint")]
    MissingTensor(String),

    #[error("tensor {0} in the checkpoint is not one this architecture has")]
    UnexpectedTensor(String),

    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<u64>, found: Vec<u64> },

    #[error("tensor {name} is stored as {dtype}; only F32, F16 and BF16 checkpoints can be imported")]
    UnsupportedDtype { name: String, dtype: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// Requantizing would compound the rounding of an already quantized tensor.
    #[error("tensor {name} is already quantized ({from}); requantizing it to {to} is refused: import the F32, F16 or BF16 model instead")]
    Requantize { name: String, from: kiln_gguf::GgmlType, to: kiln_gguf::GgmlType },

    #[error("reading {}: {source}", path.display())]
    Gguf { path: PathBuf, source: kiln_gguf::GgufError },

    #[error("writing the GGUF file: {0}")]
    Write(std::io::Error),
}

impl ConvertError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ConvertError {
        let path = path.into();
        move |source| ConvertError::Io { path, source }
    }

    pub(crate) fn bad_config(key: &str, message: impl Into<String>) -> ConvertError {
        ConvertError::BadConfig { key: key.into(), message: message.into() }
    }
}
