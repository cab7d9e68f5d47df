//! API errors as values, rendered in the shape each API's clients expect.
//!
//! Handlers return `ApiError` and never panic on user data. Ollama clients read
//! `{"error": "..."}`; the OpenAI SDK reads `{"error": {"message", "type", "param", "code"}}`,
//! so the `/v1` routes wrap the same value in [`OpenAiError`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A failed request: the HTTP status and a message meant for the person calling the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into() }
    }

    /// Too much work queued: the client should come back (503 with Retry-After).
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: message.into() }
    }

    /// The message Ollama gives for a model it does not have, which clients match on.
    pub fn model_not_found(name: &str) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, message: format!("model '{name}' not found") }
    }
}

/// A 503 tells clients (the OpenAI SDK retries on it) when to try again.
fn with_retry_after(status: StatusCode, response: Response) -> Response {
    let mut response = response;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        with_retry_after(status, (status, Json(json!({ "error": self.message }))).into_response())
    }
}

/// The same error in OpenAI's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> OpenAiError {
        OpenAiError(e)
    }
}

impl OpenAiError {
    /// The error object (without status), also used as the payload of a mid-stream SSE error.
    pub fn body(&self) -> serde_json::Value {
        let (kind, code) = match self.0.status {
            StatusCode::NOT_FOUND => ("invalid_request_error", Some("model_not_found")),
            s if s.is_client_error() => ("invalid_request_error", None),
            _ => ("api_error", None),
        };
        json!({ "error": { "message": self.0.message, "type": kind, "param": null, "code": code } })
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = self.0.status;
        with_retry_after(status, (status, Json(self.body())).into_response())
    }
}

/// Parses a JSON request body, turning every syntax or type error into a 400 that says what
/// was wrong (axum's own extractor answers 422 for type errors, which Ollama clients do not
/// expect).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("missing request body"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_matches_ollama() {
        let e = ApiError::model_not_found("nope");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "model 'nope' not found");
        assert_eq!(OpenAiError(e).body()["error"]["code"], "model_not_found");
    }

    #[test]
    fn bad_json_and_wrong_types_are_bad_requests() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct R {
            model: String,
        }
        assert_eq!(parse_json::<R>(b"{nope").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse_json::<R>(br#"{"model": 3}"#).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse_json::<R>(b"  ").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse_json::<R>(br#"{"model": "m"}"#).unwrap().model, "m");
    }
}
