//! What can go wrong in a pull, each with a message a user can act on.

use crate::error::LibraryError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("model '{0}' not found")]
    NotFound(String),
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: {message}")]
    Network { url: String, message: String },
    #[error("GET {url}: {reason}")]
    BadResponse { url: String, reason: String },
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("{0}")]
    HuggingFace(String),
    #[error("pull cancelled")]
    Cancelled,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Library(LibraryError),
}

impl PullError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PullError {
        let path = path.into();
        move |source| PullError::Io { path, source }
    }

    pub(crate) fn network(url: &str, err: impl std::fmt::Display) -> PullError {
        PullError::Network { url: url.to_string(), message: err.to_string() }
    }

    /// Network trouble is worth another try; a wrong answer or a local failure is not.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, PullError::Network { .. })
    }
}

impl From<LibraryError> for PullError {
    fn from(e: LibraryError) -> PullError {
        match e {
            LibraryError::DigestMismatch { expected, actual } => PullError::DigestMismatch { expected, actual },
            LibraryError::Io { path, source } => PullError::Io { path, source },
            other => PullError::Library(other),
        }
    }
}
