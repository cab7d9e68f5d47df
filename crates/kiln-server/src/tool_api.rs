//! Tool calls in both APIs' shapes: the messages that carry calls and their results into the
//! conversation, `tool_choice`, and the calls of an answer as each API returns them.
//!
//! - OpenAI: assistant `tool_calls` are `[{id, type: "function", function: {name, arguments}}]`
//!   with the arguments as JSON text; a `tool` message answers one by `tool_call_id`.
//! - Ollama: `tool_calls` are `[{function: {name, arguments}}]` with the arguments as an
//!   object; a `tool` message names its function in `tool_name`.

use crate::error::ApiError;
use kiln_engine::chat_template::ChatToolCall;
use kiln_engine::tools::{ToolCall, ToolChoice};
use serde::Deserialize;
use serde_json::{json, Value};

/// A call as a request's assistant message carries it (both APIs).
#[derive(Debug, Deserialize)]
pub struct RequestToolCall {
    pub id: Option<String>,
    pub function: RequestFunction,
}

#[derive(Debug, Deserialize)]
pub struct RequestFunction {
    pub name: String,
    /// JSON text (OpenAI) or an object (Ollama).
    #[serde(default)]
    pub arguments: Value,
}

impl RequestToolCall {
    /// The call as the template sees it, its arguments an object whichever way they came.
    pub fn into_chat(self) -> Result<ChatToolCall, ApiError> {
        let arguments = match self.function.arguments {
            Value::String(text) => serde_json::from_str(&text).map_err(|e| {
                ApiError::bad_request(format!("the arguments of a call to {} are not JSON: {e}", self.function.name))
            })?,
            Value::Null => json!({}),
            args => args,
        };
        Ok(ChatToolCall::new(self.id, self.function.name, arguments))
    }
}

/// The calls of a request message, in the template's shape.
pub fn chat_calls(calls: Option<Vec<RequestToolCall>>) -> Result<Vec<ChatToolCall>, ApiError> {
    calls.unwrap_or_default().into_iter().map(RequestToolCall::into_chat).collect()
}

/// OpenAI's `tool_choice`: `"auto" | "none" | "required"` or
/// `{type: "function", function: {name}}`.
pub fn openai_tool_choice(choice: Option<&Value>) -> Result<ToolChoice, ApiError> {
    match choice {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(ApiError::bad_request(format!(
                "invalid tool_choice {other:?}: expected auto, none, required or a function"
            ))),
        },
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Ok(ToolChoice::Function(name.to_string())),
            None => Err(ApiError::bad_request("tool_choice names no function: expected {type, function: {name}}")),
        },
    }
}

/// A call in OpenAI's shape; streamed deltas carry its `index` too.
pub fn openai_call(call: &ToolCall, id: String, index: Option<usize>) -> Value {
    let arguments = Value::Object(call.arguments.clone()).to_string();
    let mut v = json!({ "id": id, "type": "function", "function": { "name": call.name, "arguments": arguments } });
    if let Some(i) = index {
        v["index"] = i.into();
    }
    v
}

/// Calls in Ollama's shape, the first being the answer's `first`-th.
pub fn ollama_calls(calls: &[ToolCall], first: usize) -> Value {
    calls
        .iter()
        .zip(first..)
        .map(|(c, index)| json!({ "function": { "index": index, "name": c.name, "arguments": c.arguments } }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> ToolCall {
        let Value::Object(arguments) = json!({ "city": "Oslo" }) else { unreachable!() };
        ToolCall { name: "get_weather".into(), arguments }
    }

    #[test]
    fn calls_come_in_with_arguments_as_text_or_object() {
        let openai: RequestToolCall = serde_json::from_value(json!(
            { "id": "c1", "type": "function", "function": { "name": "f", "arguments": "{\"a\": 1}" } }
        ))
        .unwrap();
        assert_eq!(openai.into_chat().unwrap(), ChatToolCall::new(Some("c1".into()), "f", json!({ "a": 1 })));
        let ollama: RequestToolCall =
            serde_json::from_value(json!({ "function": { "name": "f", "arguments": { "a": 1 } } })).unwrap();
        assert_eq!(ollama.into_chat().unwrap(), ChatToolCall::new(None, "f", json!({ "a": 1 })));
        let broken: RequestToolCall =
            serde_json::from_value(json!({ "function": { "name": "f", "arguments": "{oops" } })).unwrap();
        assert!(broken.into_chat().is_err());
    }

    #[test]
    fn tool_choice_takes_openai_shapes() {
        assert_eq!(openai_tool_choice(None).unwrap(), ToolChoice::Auto);
        assert_eq!(openai_tool_choice(Some(&json!("none"))).unwrap(), ToolChoice::None);
        assert_eq!(openai_tool_choice(Some(&json!("required"))).unwrap(), ToolChoice::Required);
        let named = json!({ "type": "function", "function": { "name": "f" } });
        assert_eq!(openai_tool_choice(Some(&named)).unwrap(), ToolChoice::Function("f".into()));
        assert!(openai_tool_choice(Some(&json!("always"))).is_err());
        assert!(openai_tool_choice(Some(&json!({ "type": "function" }))).is_err());
    }

    #[test]
    fn answers_carry_calls_in_each_apis_shape() {
        let v = openai_call(&call(), "call_1f2_0".into(), Some(0));
        assert_eq!(
            v,
            json!({ "index": 0, "id": "call_1f2_0", "type": "function",
                    "function": { "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}" } })
        );
        assert_eq!(
            ollama_calls(&[call()], 2),
            json!([{ "function": { "index": 2, "name": "get_weather", "arguments": { "city": "Oslo" } } }])
        );
    }
}
