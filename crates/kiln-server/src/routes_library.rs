//! The model library over HTTP: `/api/pull`, `/api/create`, `/api/copy`, `/api/delete`, and
//! blob uploads (`HEAD`/`POST /api/blobs/:digest`).

use crate::error::{parse_json, ApiError};
use crate::registry::library_error;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use kiln_library::create::{create, CreateError, CreateRequest};
use kiln_library::{pull, Digest, LibraryError, ModelName, PullConfig, PullError, PullProgress};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn model_name(s: &str) -> Result<ModelName, ApiError> {
    ModelName::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A library error for a request that named `name`: a missing model is reported under the
/// name the client wrote (`nope`, not `nope:latest`), as Ollama does.
fn named_error(name: &str) -> impl FnOnce(LibraryError) -> ApiError + '_ {
    move |e| match e {
        LibraryError::NotFound(_) => ApiError::model_not_found(name),
        other => library_error(other),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("a background task failed: {e}")))
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(alias = "name")]
    model: String,
    stream: Option<bool>,
    #[serde(flatten)]
    request: CreateRequest,
}

/// One status line of a create, as Ollama streams them.
#[derive(Serialize)]
struct Status {
    status: String,
}

type Events<T> = tokio::sync::mpsc::UnboundedReceiver<Result<T, ApiError>>;

/// The last event, once `rx` is done; the first error if one comes.
async fn last_event<T>(first: T, mut rx: Events<T>) -> Result<T, ApiError> {
    let mut last = first;
    while let Some(ev) = rx.recv().await {
        last = ev?;
    }
    Ok(last)
}

/// An NDJSON response: `first`, then what `rx` yields as it comes, an error as an
/// `{"error": ...}` line. `guard` lives as long as the response body.
fn ndjson_stream<T, G>(first: Vec<T>, rx: Events<T>, guard: G) -> Response
where
    T: Serialize + Send + 'static,
    G: Send + 'static,
{
    let pending: std::collections::VecDeque<T> = first.into();
    let stream = futures_util::stream::unfold((pending, rx, guard), |(mut pending, mut rx, guard)| async move {
        let line = match pending.pop_front() {
            Some(ev) => serde_json::to_string(&ev).unwrap_or_default(),
            None => match rx.recv().await? {
                Ok(ev) => serde_json::to_string(&ev).unwrap_or_default(),
                Err(e) => json!({ "error": e.message }).to_string(),
            },
        };
        Some((Ok::<_, std::convert::Infallible>(line + "\n"), (pending, rx, guard)))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}

fn create_error(e: CreateError) -> ApiError {
    match e {
        CreateError::Invalid(m) => ApiError::bad_request(m),
        CreateError::Library(e) => library_error(e),
    }
}

/// Creates a model, streaming Ollama's status lines as they happen (an import can take
/// minutes). The answer waits for the first status of the create itself, which comes after
/// the request is checked, so a refused request is a plain 400 or 404.
pub async fn create_model(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: CreateBody = parse_json(&body)?;
    let name = model_name(&req.model)?;
    if let Some(t) = req.request.template.as_deref() {
        kiln_engine::prompt::check_template(t).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let store = state.registry.store()?.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Status, ApiError>>();
    let request = req.request;
    tokio::task::spawn_blocking(move || {
        let result = create(&store, &name, &request, &mut |status| drop(tx.send(Ok(Status { status }))));
        if let Err(e) = result {
            let _ = tx.send(Err(create_error(e)));
        }
    });
    let first = rx.recv().await.unwrap_or_else(|| Err(ApiError::internal("the create stopped")))?;
    if !req.stream.unwrap_or(true) {
        return Ok(Json(last_event(first, rx).await?).into_response());
    }
    let parsing = Status { status: "parsing modelfile".into() };
    Ok(ndjson_stream(vec![parsing, first], rx, ()))
}

#[derive(Deserialize)]
struct CopyBody {
    source: String,
    destination: String,
}

pub async fn copy_model(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let req: CopyBody = parse_json(&body)?;
    let (src, dst) = (model_name(&req.source)?, model_name(&req.destination)?);
    let store = state.registry.store()?.clone();
    blocking(move || store.copy(&src, &dst)).await?.map_err(named_error(&req.source))?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
struct DeleteBody {
    #[serde(alias = "name")]
    model: String,
}

pub async fn delete_model(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let req: DeleteBody = parse_json(&body)?;
    let name = model_name(&req.model)?;
    // A loaded library model is unloaded (after its running requests) before its blobs go;
    // a file named on the command line is not the library's to delete.
    if let Some(entry) = state.registry.find(&req.model).ok().filter(|e| e.digest.is_some()) {
        state.registry.forget(&entry).await;
    }
    let store = state.registry.store()?.clone();
    blocking(move || store.delete(&name)).await?.map_err(named_error(&req.model))?;
    Ok(StatusCode::OK)
}

fn digest(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub async fn head_blob(State(state): State<AppState>, Path(d): Path<String>) -> Result<StatusCode, ApiError> {
    let d = digest(&d)?;
    Ok(if state.registry.store()?.has_blob(&d) { StatusCode::OK } else { StatusCode::NOT_FOUND })
}

/// Bytes from the HTTP body for a blocking reader, with backpressure.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Stores an uploaded blob; the body must hash to the digest in the path, or nothing is kept.
pub async fn post_blob(State(state): State<AppState>, Path(d): Path<String>, body: Body) -> Result<Response, ApiError> {
    let d = digest(&d)?;
    let store = state.registry.store()?.clone();
    if store.has_blob(&d) {
        return Ok(StatusCode::OK.into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let writer = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader { rx, current: Bytes::new() };
        store.write_blob(&mut reader, Some(&d))
    });
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| std::io::Error::other(format!("reading the upload: {e}")));
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    match writer.await.map_err(|e| ApiError::internal(format!("storing the blob: {e}")))? {
        Ok(_) => Ok(StatusCode::CREATED.into_response()),
        Err(e @ LibraryError::DigestMismatch { .. }) => Err(ApiError::bad_request(e.to_string())),
        Err(e) => Err(library_error(e)),
    }
}

#[derive(Deserialize)]
struct PullBody {
    #[serde(alias = "name")]
    model: String,
    #[serde(default)]
    insecure: bool,
    stream: Option<bool>,
}

/// A failed pull as the API reports it.
fn pull_error(e: PullError) -> ApiError {
    let status = match &e {
        PullError::NotFound(_) => StatusCode::NOT_FOUND,
        PullError::DigestMismatch { .. } | PullError::HuggingFace(_) => StatusCode::BAD_REQUEST,
        PullError::Status { .. } | PullError::Network { .. } | PullError::BadResponse { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError { status, message: e.to_string() }
}

/// Sets the flag when dropped: the response body is dropped when the client goes away,
/// which stops the download (its partial file stays for the next pull to resume).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Downloads a model into the library, streaming Ollama's progress objects. The first event
/// is awaited before answering, so a model the registry does not have is a plain 404.
pub async fn pull_model(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: PullBody = parse_json(&body)?;
    let name = model_name(&req.model)?;
    let store = state.registry.store()?.clone();
    let config = PullConfig { insecure: req.insecure || state.pull.insecure, ..(*state.pull).clone() };
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<PullProgress, ApiError>>();
    let flag = Arc::clone(&cancel);
    tokio::task::spawn_blocking(move || {
        let result = pull(&store, &name, &config, &mut |p| drop(tx.send(Ok(p))), &flag);
        if let Err(e) = result {
            let _ = tx.send(Err(pull_error(e)));
        }
    });
    let guard = CancelOnDrop(cancel);
    let first = rx.recv().await.unwrap_or_else(|| Err(ApiError::internal("the pull stopped")))?;
    if !req.stream.unwrap_or(true) {
        let last = last_event(first, rx).await;
        drop(guard);
        return Ok(Json(last?).into_response());
    }
    Ok(ndjson_stream(vec![first], rx, guard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn create_bodies_parse_ollamas_fields() {
        let b: CreateBody = parse_json(
            br#"{"model":"m","from":"smollm2","system":"s","parameters":{"temperature":0.1},
                "messages":[{"role":"user","content":"hi"}],"license":["a","b"],"stream":false,
                "files":{"x.gguf":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}"#,
        )
        .unwrap();
        assert_eq!(b.model, "m");
        assert_eq!(b.request.from.as_deref(), Some("smollm2"));
        assert_eq!(b.request.files.len(), 1);
        assert!(parse_json::<CreateBody>(br#"{"model":"m","files":{"x.gguf":"sha256:00"}}"#).is_err());
    }

    async fn body_text(r: Response) -> String {
        String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn events_stream_as_ndjson_until_an_error() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(Ok(Status { status: "converting model".into() })).unwrap();
        tx.send(Err(ApiError::bad_request("cannot import the model: no"))).unwrap();
        drop(tx);
        let streamed = body_text(ndjson_stream(vec![Status { status: "parsing modelfile".into() }], rx, ())).await;
        let parsed: Vec<Value> = streamed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(
            parsed,
            [
                json!({"status": "parsing modelfile"}),
                json!({"status": "converting model"}),
                json!({"error": "cannot import the model: no"}),
            ]
        );

        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(Ok(Status { status: "success".into() })).unwrap();
        drop(tx);
        let last = last_event(Status { status: "writing manifest".into() }, rx).await.unwrap();
        assert_eq!(last.status, "success");
    }
}
