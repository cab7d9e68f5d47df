//! The `logprobs` request fields of both APIs and the shapes their answers take.
//!
//! OpenAI's chat `logprobs.content` and Ollama's `logprobs` list share one entry shape
//! (`{token, logprob, bytes, top_logprobs}`); legacy completions use parallel arrays.

use crate::error::ApiError;
use kiln_engine::logprobs::{Logprob, TokenLogprob, MAX_TOP_LOGPROBS};
use serde_json::{json, Map, Value};

/// Alternatives per token a request asks for, checked: `None` when it wants no logprobs.
pub fn requested(enabled: bool, top: Option<u32>) -> Result<Option<usize>, ApiError> {
    let top = top.unwrap_or(0) as usize;
    if top > MAX_TOP_LOGPROBS {
        return Err(ApiError::bad_request(format!(
            "invalid top_logprobs {top}: expected a number from 0 to {MAX_TOP_LOGPROBS}"
        )));
    }
    if top > 0 && !enabled {
        return Err(ApiError::bad_request("top_logprobs needs logprobs to be true"));
    }
    Ok(enabled.then_some(top))
}

/// JSON has no infinities; OpenAI reports an impossible token as -9999.
fn finite(logprob: f32) -> f32 {
    if logprob.is_finite() {
        logprob
    } else {
        -9999.0
    }
}

fn text(lp: &Logprob) -> String {
    String::from_utf8_lossy(&lp.bytes).into_owned()
}

fn entry(lp: &Logprob) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("token".into(), text(lp).into());
    m.insert("logprob".into(), finite(lp.logprob).into());
    m.insert("bytes".into(), lp.bytes.clone().into());
    m
}

/// OpenAI chat's `logprobs.content` and Ollama's `logprobs`: one entry per token.
pub fn entries(lps: &[TokenLogprob]) -> Value {
    let one = |lp: &TokenLogprob| {
        let mut m = entry(&lp.chosen);
        m.insert("top_logprobs".into(), lp.top.iter().map(|t| Value::Object(entry(t))).collect());
        Value::Object(m)
    };
    lps.iter().map(one).collect()
}

/// Legacy completions' `logprobs`: parallel arrays, `top_logprobs` as one text → logprob map
/// per token and `text_offset` the character offset of each token in the choice's text.
/// `offset` is where the first token starts and, after the call, where the next one will.
pub fn legacy(lps: &[TokenLogprob], offset: &mut usize) -> Value {
    let mut tokens = Vec::with_capacity(lps.len());
    let mut token_logprobs = Vec::with_capacity(lps.len());
    let mut top_logprobs = Vec::with_capacity(lps.len());
    let mut text_offset = Vec::with_capacity(lps.len());
    for lp in lps {
        let t = text(&lp.chosen);
        text_offset.push(*offset);
        *offset += t.chars().count();
        tokens.push(t);
        token_logprobs.push(finite(lp.chosen.logprob));
        let top: Map<String, Value> = lp.top.iter().map(|a| (text(a), finite(a.logprob).into())).collect();
        top_logprobs.push(top);
    }
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lp(token: u32, text: &str, logprob: f32, top: &[(u32, &str, f32)]) -> TokenLogprob {
        let one = |token, text: &str, logprob| Logprob { token, bytes: text.as_bytes().to_vec(), logprob };
        TokenLogprob { chosen: one(token, text, logprob), top: top.iter().map(|&(i, t, l)| one(i, t, l)).collect() }
    }

    #[test]
    fn requests_are_checked() {
        assert_eq!(requested(false, None).unwrap(), None);
        assert_eq!(requested(true, None).unwrap(), Some(0));
        assert_eq!(requested(true, Some(20)).unwrap(), Some(20));
        assert_eq!(requested(false, Some(0)).unwrap(), None);
        assert_eq!(requested(true, Some(21)).unwrap_err().status, 400);
        assert_eq!(requested(false, Some(3)).unwrap_err().status, 400);
    }

    #[test]
    fn entries_carry_text_bytes_and_alternatives() {
        let v = entries(&[lp(5, "Hi", -0.5, &[(5, "Hi", -0.5), (6, "Yo", f32::NEG_INFINITY)])]);
        assert_eq!(
            v,
            json!([{
                "token": "Hi", "logprob": -0.5, "bytes": [72, 105],
                "top_logprobs": [
                    { "token": "Hi", "logprob": -0.5, "bytes": [72, 105] },
                    { "token": "Yo", "logprob": -9999.0, "bytes": [89, 111] },
                ],
            }])
        );
    }

    #[test]
    fn legacy_offsets_count_characters_across_calls() {
        let mut offset = 3;
        let v = legacy(&[lp(1, "é", -1.0, &[(1, "é", -1.0)]), lp(2, " a", -2.0, &[])], &mut offset);
        assert_eq!(v["tokens"], json!(["é", " a"]));
        assert_eq!(v["token_logprobs"], json!([-1.0, -2.0]));
        assert_eq!(v["top_logprobs"], json!([{ "é": -1.0 }, {}]));
        assert_eq!(v["text_offset"], json!([3, 4]));
        assert_eq!(offset, 6);
    }
}
