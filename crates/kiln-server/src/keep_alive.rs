//! How long a model stays loaded after its last request (Ollama's `keep_alive`).

use crate::error::ApiError;
use serde_json::Value;
use std::time::Duration;

/// Ollama's default when neither the request nor `KILN_KEEP_ALIVE` says otherwise.
pub const DEFAULT: Duration = Duration::from_secs(5 * 60);

/// `None` keeps the model loaded for good.
pub type KeepAlive = Option<Duration>;

/// The server-wide default: `KILN_KEEP_ALIVE` if set (and valid), else five minutes.
pub fn default_from_env() -> Result<KeepAlive, ApiError> {
    match std::env::var("KILN_KEEP_ALIVE") {
        Ok(v) if !v.trim().is_empty() => parse(&Value::String(v)),
        _ => Ok(Some(DEFAULT)),
    }
}

/// A request's `keep_alive`: seconds as a number, or a Go-style duration string ("5m",
/// "1h30m", "10s", "0"); negative means forever.
pub fn parse(v: &Value) -> Result<KeepAlive, ApiError> {
    let bad = || {
        ApiError::bad_request(format!("keep_alive {v} is not a duration (like \"5m\", \"30s\" or a number of seconds)"))
    };
    let secs: f64 = match v {
        Value::Number(n) => n.as_f64().ok_or_else(bad)?,
        Value::String(s) => parse_duration(s.trim()).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs < 0.0 {
        return Ok(None);
    }
    if !secs.is_finite() || secs > 1e9 {
        return Err(bad());
    }
    Ok(Some(Duration::from_secs_f64(secs)))
}

/// Seconds in a duration string: a sign, then number–unit pairs (h, m, s, ms, us, ns); a bare
/// number is seconds.
fn parse_duration(s: &str) -> Option<f64> {
    let (sign, mut rest) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    if let Ok(n) = rest.parse::<f64>() {
        return Some(sign * n);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_like_ollama() {
        assert_eq!(parse(&json!("5m")).unwrap(), Some(Duration::from_secs(300)));
        assert_eq!(parse(&json!("1h30m")).unwrap(), Some(Duration::from_secs(5400)));
        assert_eq!(parse(&json!("0")).unwrap(), Some(Duration::ZERO));
        assert_eq!(parse(&json!(0)).unwrap(), Some(Duration::ZERO));
        assert_eq!(parse(&json!(90)).unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(parse(&json!("250ms")).unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(parse(&json!(-1)).unwrap(), None);
        assert_eq!(parse(&json!("-1m")).unwrap(), None);
        for bad in [json!("soon"), json!("5x"), json!(true), json!("1e12")] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
