use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("invalid model name '{0}': expected [host/][namespace/]model[:tag] of letters, digits, '_', '-' and '.'")]
    Name(String),
    #[error("invalid digest '{0}': expected sha256:<64 hex digits>")]
    DigestSyntax(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("model '{0}' not found")]
    NotFound(String),
    #[error("blob {0} is missing from the library")]
    MissingBlob(String),
    #[error("invalid manifest for '{name}': {reason}")]
    Manifest { name: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl LibraryError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LibraryError {
        let path = path.into();
        move |source| LibraryError::Io { path, source }
    }
}
