//! kiln-server: `kiln serve`, speaking Ollama's native API and OpenAI's, over the engine.
//!
//! Each loaded model runs on its own OS thread (`worker`), fed by a channel; HTTP handlers
//! (`routes_ollama`, `routes_openai`) only parse, validate (`options`), queue (`dispatch`)
//! and spell the events the model thread sends back. Models are GGUF files found by the
//! `registry` and loaded on first use.

pub mod access;
pub mod capability;
mod choices;
mod clock;
mod dispatch;
pub mod embed_worker;
pub mod error;
pub mod keep_alive;
pub mod limits;
mod logprobs;
pub mod metrics;
pub mod options;
pub mod registry;
mod routes_embed;
mod routes_library;
mod routes_ollama;
mod routes_openai;
mod structured;
mod tool_api;
pub mod worker;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, head, post};
use axum::Router;
use registry::Registry;
use std::path::PathBuf;
use std::sync::Arc;

/// Largest request body accepted. Text prompts need far less; the limit keeps one client
/// from making the server buffer arbitrary amounts.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Where Ollama listens, so Ollama clients find Kiln without configuration.
pub const DEFAULT_HOST: &str = "127.0.0.1:11434";

/// What `kiln serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `host:port`, `http://host:port`, `:port` or `host`.
    pub host: String,
    /// The model library (manifests and blobs).
    pub models_dir: Option<PathBuf>,
    /// Models given by name and path.
    pub models: Vec<(String, PathBuf)>,
    /// Compute threads per model (default: one per core).
    pub threads: Option<usize>,
    /// Allowed browser origins and the API key.
    pub access: access::AccessPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid host '{0}': expected host:port, http://host:port or :port")]
    Host(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("KILN_KEEP_ALIVE: {0}")]
    KeepAlive(String),
    #[error("{0}")]
    Limits(String),
    #[error("model library: {0}")]
    Library(#[from] kiln_library::LibraryError),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    /// Where pulls download from (KILN_REGISTRY, HF_ENDPOINT, HF_TOKEN).
    pub pull: Arc<kiln_library::PullConfig>,
}

/// Normalises the listen address: drops an `http://` scheme and a trailing slash, and fills
/// in the default host or port, as `OLLAMA_HOST` is read.
pub fn parse_host(s: &str) -> Result<String, ServerError> {
    let trimmed = s.trim();
    let rest = trimmed.strip_prefix("http://").unwrap_or(trimmed).trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains("://") {
        return Err(ServerError::Host(s.to_string()));
    }
    let with_port = match rest.rsplit_once(':') {
        // `[::1]:8080`, `host:8080`, `:8080`
        Some((host, port)) if !port.contains(']') => {
            port.parse::<u16>().map_err(|_| ServerError::Host(s.to_string()))?;
            let host = if host.is_empty() { "127.0.0.1" } else { host };
            format!("{host}:{port}")
        }
        _ => format!("{rest}:11434"),
    };
    Ok(with_port)
}

/// All routes of both APIs, behind the access policy.
pub fn router(state: AppState, access: access::AccessPolicy) -> Router {
    Router::new()
        .route("/", get(routes_ollama::root))
        .route("/api/version", get(routes_ollama::version))
        .route("/health", get(health))
        .route("/metrics", get(metrics_page))
        .route("/api/generate", post(routes_ollama::generate))
        .route("/api/chat", post(routes_ollama::chat))
        .route("/api/embed", post(routes_embed::ollama_embed))
        .route("/api/embeddings", post(routes_embed::ollama_embeddings))
        .route("/api/tags", get(routes_ollama::tags))
        .route("/api/show", post(routes_ollama::show))
        .route("/api/ps", get(routes_ollama::ps))
        .route("/api/pull", post(routes_library::pull_model))
        .route("/api/create", post(routes_library::create_model))
        .route("/api/copy", post(routes_library::copy_model))
        .route("/api/delete", delete(routes_library::delete_model))
        .route(
            "/api/blobs/{digest}",
            head(routes_library::head_blob)
                // Model files are gigabytes; they stream to disk, so no body limit applies.
                .post(routes_library::post_blob)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/chat/completions", post(routes_openai::chat_completions))
        .route("/v1/completions", post(routes_openai::completions))
        .route("/v1/embeddings", post(routes_embed::openai_embeddings))
        .route("/v1/models", get(routes_openai::list_models))
        .route("/v1/models/{*id}", get(routes_openai::retrieve_model))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(Arc::new(access), access::enforce))
        .with_state(state)
}

/// What every server needs before it listens: the address, the state shared by the
/// handlers, and the access policy.
struct Prepared {
    addr: String,
    state: AppState,
    access: access::AccessPolicy,
}

/// Reads the environment's settings and opens the library.
fn prepare(config: ServerConfig) -> Result<Prepared, ServerError> {
    let addr = parse_host(&config.host)?;
    let keep_alive = keep_alive::default_from_env().map_err(|e| ServerError::KeepAlive(e.to_string()))?;
    let limits = limits::from_env().map_err(ServerError::Limits)?;
    let (num_parallel, max_queue) = limits::parallel_from_env().map_err(ServerError::Limits)?;
    let store = config.models_dir.map(kiln_library::Store::open).transpose()?.map(Arc::new);
    let registry = Arc::new(
        Registry::new(store, config.models, config.threads)
            .with_keep_alive(keep_alive)
            .with_limits(limits)
            .with_parallel(num_parallel, max_queue),
    );
    let state = AppState { registry, pull: Arc::new(kiln_library::PullConfig::from_env()) };
    Ok(Prepared { addr, state, access: config.access })
}

impl Prepared {
    async fn bind(&self) -> Result<tokio::net::TcpListener, ServerError> {
        tokio::net::TcpListener::bind(&self.addr)
            .await
            .map_err(|source| ServerError::Bind { addr: self.addr.clone(), source })
    }

    /// Answers requests on `listener`, unloading idle models as their keep-alive runs out.
    async fn run(self, listener: tokio::net::TcpListener) -> Result<(), ServerError> {
        let reaper = Arc::clone(&self.state.registry);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                reaper.unload_expired().await;
            }
        });
        axum::serve(listener, router(self.state, self.access)).await?;
        Ok(())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ServerError> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// For load balancers and supervisors: the server answers.
async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Prometheus text format.
async fn metrics_page(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    let gauges = state.registry.gauges().await;
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.registry.metrics().render(&gauges))
}

/// Runs the server until the process is stopped.
pub fn serve(config: ServerConfig) -> Result<(), ServerError> {
    let server = prepare(config)?;
    if let Ok(store) = server.state.registry.store() {
        let loose = store.loose_gguf_files();
        if !loose.is_empty() {
            eprintln!(
                "kiln serve: {} GGUF file(s) in {} are not models of the library; add one with \
                 `kiln create NAME -f Modelfile` (FROM ./file.gguf) or serve it with --model NAME=PATH",
                loose.len(),
                store.root().display()
            );
        }
    }
    if let Some(store) = server.state.registry.store().ok().filter(|_| std::env::var_os("KILN_NOPRUNE").is_none()) {
        // Blobs left by interrupted creates or deletes; partial downloads are kept for resume.
        // Only `kiln serve` prunes at start: an embedded server starts with every command, and
        // pruning each time could remove a blob another process has just uploaded to create from.
        if let Err(e) = store.prune() {
            eprintln!("kiln serve: not pruning unused blobs: {e}");
        }
    }
    runtime()?.block_on(async move {
        let listener = server.bind().await?;
        let n = server.state.registry.list().len();
        eprintln!("kiln serve: listening on http://{} ({n} model(s) available)", listener.local_addr()?);
        server.run(listener).await
    })
}

/// Starts a server in this process, on a background thread, and returns where it listens
/// once it does (`host` may give port 0 for any free port). The command-line client uses it
/// when no server is running, so every command goes through the same API.
pub fn spawn(config: ServerConfig) -> Result<std::net::SocketAddr, ServerError> {
    let server = prepare(config)?;
    let runtime = runtime()?;
    let listener = runtime.block_on(server.bind())?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new().name("kiln-server".into()).spawn(move || {
        if let Err(e) = runtime.block_on(server.run(listener)) {
            eprintln!("kiln: the embedded server stopped: {e}");
        }
    })?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use tower::ServiceExt;

    fn app(access: access::AccessPolicy) -> Router {
        let registry = Arc::new(Registry::new(None, vec![], Some(1)));
        router(AppState { registry, pull: Default::default() }, access)
    }

    async fn call(app: Router, request: Request<Body>) -> axum::response::Response {
        app.oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn origins_are_checked_and_preflights_answered() {
        let get =
            |origin: &str| Request::get("/api/version").header(header::ORIGIN, origin).body(Body::empty()).unwrap();
        let ok = call(app(Default::default()), get("http://localhost:5173")).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://localhost:5173");
        let refused = call(app(Default::default()), get("https://evil.example")).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let preflight = Request::builder()
            .method("OPTIONS")
            .uri("/v1/chat/completions")
            .header(header::ORIGIN, "http://127.0.0.1:3000")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type, x-stainless-os")
            .body(Body::empty())
            .unwrap();
        let pre = call(app(Default::default()), preflight).await;
        assert_eq!(pre.status(), StatusCode::NO_CONTENT);
        assert_eq!(pre.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS], "content-type, x-stainless-os");
        // No Origin header (curl, SDKs): no CORS involved.
        let plain = call(app(Default::default()), Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(plain.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn api_key_guards_every_route() {
        let policy = access::AccessPolicy { origins: vec![], api_key: Some("s3cret".into()) };
        for uri in ["/", "/api/version", "/api/tags", "/v1/models"] {
            let none = call(app(policy.clone()), Request::get(uri).body(Body::empty()).unwrap()).await;
            assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{uri}");
            let wrong = Request::get(uri).header(header::AUTHORIZATION, "Bearer s3cre7").body(Body::empty()).unwrap();
            assert_eq!(call(app(policy.clone()), wrong).await.status(), StatusCode::UNAUTHORIZED, "{uri}");
            let right = Request::get(uri).header(header::AUTHORIZATION, "Bearer s3cret").body(Body::empty()).unwrap();
            assert_eq!(call(app(policy.clone()), right).await.status(), StatusCode::OK, "{uri}");
        }
    }

    #[tokio::test]
    async fn an_upload_cut_off_mid_body_leaves_nothing_and_a_whole_one_is_stored() {
        let dir = kiln_testdata::TempDir::new("upload");
        let store = Arc::new(kiln_library::Store::open(&dir.0).unwrap());
        let registry = Arc::new(Registry::new(Some(Arc::clone(&store)), vec![], Some(1)));
        let app = || router(AppState { registry: Arc::clone(&registry), pull: Default::default() }, Default::default());
        let data = vec![7u8; 3 << 20];
        let digest = kiln_library::Digest::of_bytes(&data);
        let uri = format!("/api/blobs/{digest}");
        // The client goes away after the first megabyte: the body stream ends in an error.
        let cut: Vec<Result<axum::body::Bytes, std::io::Error>> = vec![
            Ok(axum::body::Bytes::copy_from_slice(&data[..1 << 20])),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
        ];
        let body = Body::from_stream(futures_util::stream::iter(cut));
        let r = call(app(), Request::post(&uri).body(body).unwrap()).await;
        assert!(r.status().is_server_error() || r.status().is_client_error(), "{}", r.status());
        assert!(!store.has_blob(&digest));
        let leftovers: Vec<_> = std::fs::read_dir(dir.0.join("blobs")).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // The same upload whole is stored under its digest.
        let r = call(app(), Request::post(&uri).body(Body::from(data.clone())).unwrap()).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(std::fs::read(store.blob_path(&digest)).unwrap(), data);
        let head = call(app(), Request::head(&uri).body(Body::empty()).unwrap()).await;
        assert_eq!(head.status(), StatusCode::OK);
    }

    #[test]
    fn hosts_parse_like_ollama_host() {
        assert_eq!(parse_host("127.0.0.1:8080").unwrap(), "127.0.0.1:8080");
        assert_eq!(parse_host("http://0.0.0.0:9000/").unwrap(), "0.0.0.0:9000");
        assert_eq!(parse_host(":7000").unwrap(), "127.0.0.1:7000");
        assert_eq!(parse_host("localhost").unwrap(), "localhost:11434");
        assert_eq!(parse_host("[::1]:5000").unwrap(), "[::1]:5000");
        assert!(parse_host("host:notaport").is_err());
        assert!(parse_host("ftp://x:1").is_err());
        assert!(parse_host("").is_err());
    }
}
