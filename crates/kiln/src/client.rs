//! The HTTP client the library commands (`list`, `show`, `create`, `pull`, `run NAME`...) use:
//! the server at KILN_HOST, or, when nothing listens there, a server started inside this
//! process over the same library, so every command goes through the one API either way.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;
use ureq::http::{Response, StatusCode};
use ureq::{Agent, Body, RequestBuilder, SendBody};

/// How long to wait for a server to accept a connection before giving up on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A request the server refused, with its `{"error": ...}` message: what the user needs to
/// read, so it is printed as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub String);

pub struct Client {
    agent: Agent,
    base: String,
    api_key: Option<String>,
    /// Whether the server runs inside this process (nothing was listening at KILN_HOST).
    pub embedded: bool,
}

/// The model library an embedded server opens: KILN_MODELS, else `~/.kiln/models`, as
/// `kiln serve` does.
pub fn library_dir() -> Option<PathBuf> {
    std::env::var_os("KILN_MODELS")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kiln").join("models")))
}

/// Whether a server accepts connections at `addr`: `Ok(false)` when every address refuses
/// (nothing listens), an error when the host cannot be reached at all.
fn listening(addr: &str) -> Result<bool> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs().with_context(|| format!("resolving {addr}"))?.collect();
    let mut failure = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => failure = Some(e),
        }
    }
    match failure {
        Some(e) => bail!("cannot reach the server at {addr} (KILN_HOST): {e}"),
        None => Ok(false),
    }
}

impl Client {
    /// Connects to KILN_HOST, starting an embedded server when nothing listens there.
    pub fn connect() -> Result<Client> {
        let host = std::env::var("KILN_HOST").unwrap_or_else(|_| kiln_server::DEFAULT_HOST.to_string());
        let addr = kiln_server::parse_host(&host)?;
        let (base, embedded) = if listening(&addr)? {
            (format!("http://{addr}"), false)
        } else {
            let config = kiln_server::ServerConfig {
                host: "127.0.0.1:0".into(),
                models_dir: library_dir(),
                models: Vec::new(),
                threads: None,
                access: kiln_server::access::AccessPolicy::from_env(),
            };
            let local = kiln_server::spawn(config).context("starting the embedded server")?;
            (format!("http://{local}"), true)
        };
        let config = Agent::config_builder().http_status_as_error(false).timeout_connect(Some(CONNECT_TIMEOUT)).build();
        let api_key = std::env::var("KILN_API_KEY").ok().filter(|k| !k.is_empty());
        Ok(Client { agent: Agent::new_with_config(config), base, api_key, embedded })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorized<B>(&self, request: RequestBuilder<B>) -> RequestBuilder<B> {
        match &self.api_key {
            Some(key) => request.header("Authorization", format!("Bearer {key}")),
            None => request,
        }
    }

    /// The response when its status is a success; the server's error message otherwise.
    fn checked(&self, path: &str, sent: Result<Response<Body>, ureq::Error>) -> Result<Response<Body>> {
        let mut response = sent.with_context(|| format!("talking to the server at {}", self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| format!("{path}: the server answered {status}"));
        Err(ApiError(message).into())
    }

    fn json_body(response: Response<Body>) -> Result<Value> {
        let text = response.into_body().read_to_string()?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).context("reading the server's answer")
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        let sent = self.authorized(self.agent.get(self.url(path))).call();
        Self::json_body(self.checked(path, sent)?)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        Self::json_body(self.send_json(self.agent.post(self.url(path)), path, body)?)
    }

    /// `DELETE` with a JSON body, as Ollama's `/api/delete` takes.
    pub fn delete(&self, path: &str, body: &Value) -> Result<()> {
        self.send_json(self.agent.delete(self.url(path)).force_send_body(), path, body).map(drop)
    }

    fn send_json(
        &self,
        request: RequestBuilder<ureq::typestate::WithBody>,
        path: &str,
        body: &Value,
    ) -> Result<Response<Body>> {
        let sent = self.authorized(request).header("Content-Type", "application/json").send(body.to_string());
        self.checked(path, sent)
    }

    /// Posts `body` and hands each line of the NDJSON answer to `each` until it returns
    /// false. An `{"error": ...}` line (a failure after the stream began) is an error.
    pub fn stream(&self, path: &str, body: &Value, mut each: impl FnMut(Value) -> Result<bool>) -> Result<()> {
        let response = self.send_json(self.agent.post(self.url(path)), path, body)?;
        for line in BufReader::new(response.into_body().into_reader()).lines() {
            let line = line.with_context(|| format!("reading the answer to {path}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(&line).with_context(|| format!("reading the answer to {path}"))?;
            if let Some(message) = value.get("error").and_then(Value::as_str) {
                return Err(ApiError(message.to_string()).into());
            }
            if !each(value)? {
                break;
            }
        }
        Ok(())
    }

    /// Whether `HEAD path` finds something (200) rather than nothing (404).
    pub fn exists(&self, path: &str) -> Result<bool> {
        let sent = self.authorized(self.agent.head(self.url(path))).call();
        match sent {
            Ok(r) if r.status() == StatusCode::NOT_FOUND => Ok(false),
            other => self.checked(path, other).map(|_| true),
        }
    }

    /// Posts the bytes of `reader` as they are read, without holding them in memory.
    pub fn upload(&self, path: &str, reader: &mut dyn Read) -> Result<()> {
        let request = self.authorized(self.agent.post(self.url(path)));
        let sent = request.header("Content-Type", "application/octet-stream").send(SendBody::from_reader(reader));
        self.checked(path, sent).map(drop)
    }
}
