//! The thread of a loaded embedding model: it takes embedding jobs in arrival order and runs
//! each batch through the encoder. There is nothing to interleave (no KV cache, no decoding),
//! so unlike the generation thread it needs no scheduler.

use crate::error::ApiError;
use crate::worker::Shared;
use kiln_engine::{EmbedError, EmbedInput, EmbedOptions, Embedder, Embeddings};
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use tokio::sync::oneshot;

/// One embedding request for the model thread.
pub struct EmbedJob {
    pub inputs: Vec<EmbedInput>,
    pub options: EmbedOptions,
    pub reply: oneshot::Sender<Result<Embeddings, ApiError>>,
}

fn embed_error(e: EmbedError) -> ApiError {
    match e {
        EmbedError::InputTooLong { .. } | EmbedError::BadDimensions { .. } | EmbedError::BadToken { .. } => {
            ApiError::bad_request(e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// Serves embedding jobs until every handle is gone.
pub(crate) fn run(embedder: Embedder, shared: Shared, rx: std_mpsc::Receiver<EmbedJob>) {
    while let Ok(job) = rx.recv() {
        // A client that left while the job waited costs nothing.
        if !job.reply.is_closed() {
            let result = embedder.embed(&job.inputs, &job.options).map_err(embed_error);
            let m = &shared.metrics;
            match &result {
                Ok(r) => {
                    m.requests.fetch_add(1, Ordering::Relaxed);
                    m.prompt_tokens.fetch_add(r.prompt_tokens as u64, Ordering::Relaxed);
                }
                Err(_) => {
                    m.requests_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = job.reply.send(result);
        }
        shared.request_done();
    }
}
