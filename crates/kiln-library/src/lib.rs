//! kiln-library: the models a user has, on disk in Ollama's layout.
//!
//! `manifests/<host>/<namespace>/<model>/<tag>` holds a Docker v2 manifest whose layers name
//! content-addressed blobs in `blobs/sha256-<hex>`: the GGUF weights, and small text layers
//! for the template, system prompt, parameters, messages and license. Names read
//! `[host/][namespace/]model[:tag]`. Blobs are written to a temporary file, hashed while
//! written, and renamed into place only when the digest matches; a manifest is written (also
//! by rename) only after every blob it names is in place, so a crash never leaves a manifest
//! pointing at a missing or partial blob.

pub mod create;
pub mod digest;
pub mod error;
pub mod gguf_info;
pub mod import;
pub mod license;
pub mod manifest;
pub mod modelfile;
pub mod name;
pub mod parameters;
pub mod pull;
pub mod spec;
pub mod store;

pub use digest::Digest;
pub use error::LibraryError;
pub use manifest::{Layer, Manifest};
pub use name::ModelName;
pub use pull::{pull, PullConfig, PullError, PullProgress};
pub use store::{LibraryModel, Store};
