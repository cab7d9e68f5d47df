//! Who may call the server: a browser origin allow-list (CORS) and an optional API key.
//!
//! Browsers send an `Origin` header; a page from an origin not on the list must not be able
//! to drive a local model, so such requests are refused outright (not merely left without
//! CORS headers). The default list is Ollama's: localhost, 127.0.0.1 and 0.0.0.0 on any port,
//! and the app schemes of desktop shells and editors. `KILN_ORIGINS` adds to it.
//! With `KILN_API_KEY` set, every request must carry `Authorization: Bearer <key>`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Origins allowed without configuration. A trailing `*` matches any rest (a port, a path).
const DEFAULT_ORIGINS: &[&str] = &[
    "http://localhost",
    "https://localhost",
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1",
    "https://127.0.0.1",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://0.0.0.0",
    "https://0.0.0.0",
    "http://0.0.0.0:*",
    "https://0.0.0.0:*",
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
];

/// The server's access rules.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Extra allowed origins (`KILN_ORIGINS`, comma-separated; `*` alone allows every origin).
    pub origins: Vec<String>,
    /// Required bearer token (`KILN_API_KEY`).
    pub api_key: Option<String>,
}

impl AccessPolicy {
    /// From `KILN_ORIGINS` and `KILN_API_KEY`.
    pub fn from_env() -> AccessPolicy {
        let origins = std::env::var("KILN_ORIGINS")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let api_key = std::env::var("KILN_API_KEY").ok().filter(|k| !k.is_empty());
        AccessPolicy { origins, api_key }
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        let matches = |pattern: &str| match pattern.strip_suffix('*') {
            Some(prefix) => origin.starts_with(prefix),
            None => origin == pattern,
        };
        DEFAULT_ORIGINS.iter().copied().any(matches) || self.origins.iter().any(|p| matches(p))
    }

    fn key_accepted(&self, request: &Request) -> bool {
        let Some(key) = &self.api_key else { return true };
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Compare without stopping at the first difference, so timing does not leak the key.
        given
            .is_some_and(|g| g.len() == key.len() && g.bytes().zip(key.bytes()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0)
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Middleware enforcing the policy, answering CORS preflights and adding CORS headers.
pub async fn enforce(State(policy): State<Arc<AccessPolicy>>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    if let Some(origin) = &origin {
        let text = origin.to_str().unwrap_or("");
        if !policy.origin_allowed(text) {
            return refuse(StatusCode::FORBIDDEN, &format!("origin '{text}' is not allowed (add it to KILN_ORIGINS)"));
        }
        if request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE, HEAD, OPTIONS"),
            );
            if let Some(asked) = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
            return response;
        }
    }
    if !policy.key_accepted(&request) {
        return refuse(StatusCode::UNAUTHORIZED, "missing or wrong API key (send Authorization: Bearer $KILN_API_KEY)");
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_configured_origins() {
        let p = AccessPolicy::default();
        for ok in
            ["http://localhost", "http://localhost:3000", "https://127.0.0.1:8443", "vscode-webview://abc", "app://x"]
        {
            assert!(p.origin_allowed(ok), "{ok}");
        }
        for bad in ["https://evil.example", "http://localhost.evil.example", "http://127.0.0.10", "null"] {
            assert!(!p.origin_allowed(bad), "{bad}");
        }
        let p = AccessPolicy { origins: vec!["https://chat.example.com".into(), "https://*".into()], api_key: None };
        assert!(p.origin_allowed("https://chat.example.com"));
        assert!(p.origin_allowed("https://anything"));
        assert!(!p.origin_allowed("http://anything"));
        let all = AccessPolicy { origins: vec!["*".into()], api_key: None };
        assert!(all.origin_allowed("http://evil.example"));
    }
}
