//! `pull`: fetching a model from Ollama's registry (or any registry speaking its protocol) or
//! from a Hugging Face GGUF repository into the library.
//!
//! Every blob is downloaded into its partial file first, then all are verified and moved into
//! place, and the manifest is written last, so an interrupted or failed pull never leaves a
//! model that names a missing or unverified blob. Blobs stay pinned throughout so a concurrent
//! prune cannot take them between their arrival and the manifest.

mod download;
mod error;
mod hf;
mod http;
mod ollama;
mod progress;

pub use error::PullError;
pub use progress::PullProgress;

use crate::digest::Digest;
use crate::manifest::{Layer, Manifest};
use crate::name::ModelName;
use crate::store::{LibraryModel, Store};
use download::Fetcher;
use http::Http;
use progress::Throttle;
use std::sync::atomic::{AtomicBool, Ordering};

pub const DEFAULT_OLLAMA_REGISTRY: &str = "https://registry.ollama.ai";
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

#[derive(Debug, Clone)]
pub struct PullConfig {
    /// Where names on `registry.ollama.ai` are fetched from (`KILN_REGISTRY`).
    pub ollama_registry: String,
    /// The Hugging Face Hub (`HF_ENDPOINT`, as the `huggingface_hub` library reads it).
    pub hf_endpoint: String,
    /// Sent as a Bearer token to the Hub (`HF_TOKEN`), for gated and private repositories.
    pub hf_token: Option<String>,
    /// Plain HTTP for registries other than Ollama's.
    pub insecure: bool,
    /// Parallel HTTP requests per blob.
    pub max_streams: usize,
    /// Bytes per `Range` request; `None` picks from the blob's size as Ollama does.
    pub part_size: Option<u64>,
    /// Further attempts at a part after a network error, each resuming where the last stopped.
    pub retries: u32,
}

impl Default for PullConfig {
    fn default() -> PullConfig {
        PullConfig {
            ollama_registry: DEFAULT_OLLAMA_REGISTRY.into(),
            hf_endpoint: DEFAULT_HF_ENDPOINT.into(),
            hf_token: None,
            insecure: false,
            max_streams: 4,
            part_size: None,
            retries: 3,
        }
    }
}

impl PullConfig {
    /// The defaults, with `KILN_REGISTRY`, `HF_ENDPOINT` and `HF_TOKEN` applied when set.
    pub fn from_env() -> PullConfig {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let d = PullConfig::default();
        PullConfig {
            ollama_registry: var("KILN_REGISTRY").unwrap_or(d.ollama_registry),
            hf_endpoint: var("HF_ENDPOINT").unwrap_or(d.hf_endpoint),
            hf_token: var("HF_TOKEN"),
            ..d
        }
    }
}

/// Where a blob's bytes come from.
pub(crate) enum Source {
    Url(String),
    /// Made or fetched while planning (Hugging Face's config and license).
    Bytes(Vec<u8>),
}

pub(crate) struct Blob {
    layer: Layer,
    source: Source,
}

impl Blob {
    fn bytes(media_type: &str, bytes: Vec<u8>) -> Blob {
        let layer = Layer {
            media_type: media_type.into(),
            digest: Digest::of_bytes(&bytes),
            size: bytes.len() as u64,
            from: None,
        };
        Blob { layer, source: Source::Bytes(bytes) }
    }
}

/// The manifest to write and where each of its blobs comes from, layers first.
pub(crate) struct Plan {
    manifest: Manifest,
    blobs: Vec<Blob>,
}

/// Pulls `name` into `store`, reporting progress as Ollama's `/api/pull` does, and returns the
/// stored model. Setting `cancel` stops the pull soon after; what arrived is kept for the next.
pub fn pull(
    store: &Store,
    name: &ModelName,
    config: &PullConfig,
    progress: &mut dyn FnMut(PullProgress),
    cancel: &AtomicBool,
) -> Result<LibraryModel, PullError> {
    progress(PullProgress::PullingManifest);
    let http = Http::new(if name.is_hugging_face() { config.hf_token.clone() } else { None });
    let plan = if name.is_hugging_face() {
        hf::plan(&http, &config.hf_endpoint, name)?
    } else {
        let repo = ollama::repository_url(name, config);
        let manifest = ollama::fetch_manifest(&http, &repo, name)?;
        let blobs = manifest
            .layers
            .iter()
            .chain([&manifest.config])
            .map(|l| Blob { layer: l.clone(), source: Source::Url(ollama::blob_url(&repo, &l.digest)) })
            .collect();
        Plan { manifest, blobs }
    };
    let _pins: Vec<_> = plan.blobs.iter().map(|b| store.pin(b.layer.digest)).collect();
    let fetcher = Fetcher {
        store,
        http: &http,
        cancel,
        max_streams: config.max_streams,
        part_size: config.part_size,
        retries: config.retries,
    };

    for blob in &plan.blobs {
        if cancel.load(Ordering::Relaxed) {
            return Err(PullError::Cancelled);
        }
        let Layer { digest, size, .. } = blob.layer;
        let mut throttle = Throttle::new();
        let mut report = |completed: u64| {
            if throttle.due(size, completed) {
                progress(PullProgress::Layer { digest, total: size, completed });
            }
        };
        match &blob.source {
            Source::Url(url) => fetcher.fetch(url, &digest, size, &mut report)?,
            Source::Bytes(bytes) => {
                store.write_blob(&mut &bytes[..], Some(&digest))?;
                report(size);
            }
        }
    }

    progress(PullProgress::VerifyingDigest);
    // Every download is checked before any is installed, so a model with one bad blob
    // leaves nothing of itself behind.
    let downloaded: Vec<Digest> =
        plan.blobs.iter().filter(|b| matches!(b.source, Source::Url(_))).map(|b| b.layer.digest).collect();
    for digest in &downloaded {
        if let Err(e) = fetcher.verify(digest) {
            downloaded.iter().for_each(|d| fetcher.discard(d));
            return Err(e);
        }
    }
    for digest in &downloaded {
        fetcher.install(digest)?;
    }
    progress(PullProgress::WritingManifest);
    store.write_manifest(name, &plan.manifest)?;
    let model = store.find(name)?;
    progress(PullProgress::Success);
    Ok(model)
}
