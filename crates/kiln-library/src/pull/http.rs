//! The HTTP client a pull uses: redirects followed, and a registry's Bearer challenge answered
//! with an anonymous token once, then reused by every request of the pull.

use super::error::PullError;
use std::sync::Mutex;
use std::time::Duration;
use ureq::http::{Response, StatusCode};
use ureq::{Agent, Body};

/// Redirects a registry may send before the bytes (Ollama's registry sends one, to its CDN).
const MAX_REDIRECTS: u32 = 10;

pub(crate) struct Http {
    agent: Agent,
    /// Sent as `Authorization: Bearer …`: a Hugging Face token from the start, or the token a
    /// registry's challenge led to.
    token: Mutex<Option<String>>,
}

impl Http {
    pub fn new(token: Option<String>) -> Http {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(MAX_REDIRECTS)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build();
        Http { agent: Agent::new_with_config(config), token: Mutex::new(token) }
    }

    fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn send(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response<Body>, PullError> {
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(token) = self.token() {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        req.call().map_err(|e| PullError::network(url, e))
    }

    /// GETs `url`; a 401 with a Bearer challenge fetches a token and tries once more. Any
    /// status comes back to the caller, which knows what a 404 means.
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response<Body>, PullError> {
        let resp = self.send(url, headers)?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("");
        let Some(token_url) = token_url(challenge) else { return Ok(resp) };
        let token = self.fetch_token(&token_url)?;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
        self.send(url, headers)
    }

    fn fetch_token(&self, url: &str) -> Result<String, PullError> {
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let resp = self.agent.get(url).call().map_err(|e| PullError::network(url, e))?;
        let bytes = success(url, resp)?.body_mut().read_to_vec().map_err(|e| PullError::network(url, e))?;
        let body: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| PullError::BadResponse { url: url.into(), reason: format!("token response: {e}") })?;
        body.token
            .or(body.access_token)
            .ok_or_else(|| PullError::BadResponse { url: url.into(), reason: "token response has no token".into() })
    }

    /// A small body (manifest, file listing, license) as bytes, after a success status.
    pub fn get_bytes(&self, url: &str, headers: &[(&str, &str)]) -> Result<Vec<u8>, PullError> {
        let mut resp = success(url, self.get(url, headers)?)?;
        resp.body_mut().read_to_vec().map_err(|e| PullError::network(url, e))
    }
}

/// The response, or an error naming its status.
pub(crate) fn success(url: &str, resp: Response<Body>) -> Result<Response<Body>, PullError> {
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(PullError::Status { url: url.into(), status: resp.status().as_u16() })
    }
}

/// `Bearer realm="https://r/token",service="s",scope="repository:x:pull"` →
/// `https://r/token?service=s&scope=repository:x:pull`.
fn token_url(challenge: &str) -> Option<String> {
    let params = challenge.trim().strip_prefix("Bearer ").or_else(|| challenge.trim().strip_prefix("bearer "))?;
    let mut realm = None;
    let mut query = Vec::new();
    for param in split_params(params) {
        let (key, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        match key.trim() {
            "realm" => realm = Some(value.to_string()),
            k @ ("service" | "scope") => query.push(format!("{k}={}", encode(value))),
            _ => {}
        }
    }
    let realm = realm?;
    let sep = if realm.contains('?') { '&' } else { '?' };
    Some(if query.is_empty() { realm } else { format!("{realm}{sep}{}", query.join("&")) })
}

/// Splits on commas outside quotes (a scope may itself hold commas: `pull,push`).
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Percent-encodes what a query value may not hold as is.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_becomes_a_token_url() {
        let c = r#"Bearer realm="https://registry.ollama.ai/v2/token",service="registry.ollama.ai",scope="repository:library/x:pull,push""#;
        assert_eq!(
            token_url(c).unwrap(),
            "https://registry.ollama.ai/v2/token?service=registry.ollama.ai&scope=repository:library/x:pull%2Cpush"
        );
        assert_eq!(token_url(r#"Bearer realm="http://h/t?a=1""#).unwrap(), "http://h/t?a=1");
        assert!(token_url(r#"Basic realm="x""#).is_none());
    }
}
