//! Structured output: the request fields of both APIs that constrain the answer, turned into
//! the grammar the engine enforces.
//!
//! - Ollama: `format` is `"json"` (any JSON object) or a JSON schema.
//! - OpenAI: `response_format` is `{"type": "text" | "json_object"}` or
//!   `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.
//! - Regular expressions, Lark grammars and choices go through vLLM's extension field,
//!   `structured_outputs: {"json" | "regex" | "grammar" | "choice" | "json_object"}`, so clients
//!   written for vLLM work unchanged.
//!
//! Whether a schema or grammar compiles is decided on the model thread (it needs the
//! vocabulary); a bad one is a 400 there, before any text is sent.

use crate::error::ApiError;
use kiln_engine::constraint::Grammar;
use serde::Deserialize;
use serde_json::Value;

/// Ollama's `format`: absent, `null` or `""` leave the answer free. Schema keywords that
/// cannot be enforced are ignored, as Ollama does (it has no `strict`); a schema that is
/// wrong (an unknown type, a `$ref` to nothing) is still refused.
pub fn ollama_format(format: Option<&Value>) -> Result<Option<Grammar>, ApiError> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(Grammar::JsonObject)),
        Some(schema @ Value::Object(_)) => Ok(Some(Grammar::JsonSchema { schema: schema.clone(), strict: false })),
        Some(other) => {
            Err(ApiError::bad_request(format!("invalid format {other}: expected \"json\" or a JSON schema")))
        }
    }
}

/// OpenAI's structured output fields, with vLLM's extension.
#[derive(Debug, Default, Deserialize)]
pub struct OpenAiStructured {
    pub response_format: Option<ResponseFormat>,
    pub structured_outputs: Option<StructuredOutputs>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Deserialize)]
pub struct JsonSchemaFormat {
    pub schema: Option<Value>,
    /// OpenAI's default is `false`: keywords the compiler cannot enforce are then ignored
    /// rather than refused.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// vLLM's `structured_outputs`: exactly one constraint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructuredOutputs {
    /// A JSON schema, as an object or as its text.
    pub json: Option<Value>,
    pub regex: Option<String>,
    pub choice: Option<Vec<String>>,
    /// A Lark grammar.
    pub grammar: Option<String>,
    #[serde(default)]
    pub json_object: bool,
}

impl StructuredOutputs {
    fn grammar(self) -> Result<Grammar, ApiError> {
        let mut found = Vec::new();
        if let Some(json) = self.json {
            let schema = match json {
                Value::String(text) => serde_json::from_str(&text)
                    .map_err(|e| ApiError::bad_request(format!("structured_outputs.json is not JSON: {e}")))?,
                schema => schema,
            };
            found.push(Grammar::JsonSchema { schema, strict: true });
        }
        found.extend(self.regex.map(Grammar::Regex));
        found.extend(self.choice.map(Grammar::Choice));
        found.extend(self.grammar.map(Grammar::Lark));
        if self.json_object {
            found.push(Grammar::JsonObject);
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            n => Err(ApiError::bad_request(format!(
                "structured_outputs needs exactly one of json, regex, choice, grammar or json_object; {n} given"
            ))),
        }
    }
}

impl OpenAiStructured {
    /// The grammar the request asks for, if any.
    pub fn grammar(self) -> Result<Option<Grammar>, ApiError> {
        let format = match self.response_format {
            None | Some(ResponseFormat::Text) => None,
            Some(ResponseFormat::JsonObject) => Some(Grammar::JsonObject),
            Some(ResponseFormat::JsonSchema { json_schema }) => {
                let schema = json_schema
                    .schema
                    .ok_or_else(|| ApiError::bad_request("response_format.json_schema.schema is required"))?;
                Some(Grammar::JsonSchema { schema, strict: json_schema.strict.unwrap_or(false) })
            }
        };
        match (format, self.structured_outputs) {
            (format, None) => Ok(format),
            (None, Some(extension)) => extension.grammar().map(Some),
            (Some(_), Some(_)) => {
                Err(ApiError::bad_request("give either response_format or structured_outputs, not both"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn openai(body: Value) -> Result<Option<Grammar>, ApiError> {
        serde_json::from_value::<OpenAiStructured>(body).map_err(|e| ApiError::bad_request(e.to_string()))?.grammar()
    }

    #[test]
    fn ollama_format_is_json_mode_or_a_schema() {
        assert_eq!(ollama_format(None).unwrap(), None);
        assert_eq!(ollama_format(Some(&json!(""))).unwrap(), None);
        assert_eq!(ollama_format(Some(&json!("json"))).unwrap(), Some(Grammar::JsonObject));
        let schema = json!({ "type": "object" });
        assert_eq!(ollama_format(Some(&schema)).unwrap(), Some(Grammar::JsonSchema { schema, strict: false }));
        let e = ollama_format(Some(&json!("xml"))).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.message.contains("\"xml\""), "{}", e.message);
    }

    #[test]
    fn response_format_maps_to_grammars() {
        assert_eq!(openai(json!({})).unwrap(), None);
        assert_eq!(openai(json!({ "response_format": { "type": "text" } })).unwrap(), None);
        assert_eq!(openai(json!({ "response_format": { "type": "json_object" } })).unwrap(), Some(Grammar::JsonObject));
        let schema = json!({ "type": "object", "properties": { "a": { "type": "integer" } } });
        let rf = json!({ "response_format": { "type": "json_schema", "json_schema": { "name": "n", "schema": schema, "strict": true } } });
        assert_eq!(openai(rf).unwrap(), Some(Grammar::JsonSchema { schema: schema.clone(), strict: true }));
        let lenient =
            json!({ "response_format": { "type": "json_schema", "json_schema": { "name": "n", "schema": schema } } });
        assert_eq!(openai(lenient).unwrap(), Some(Grammar::JsonSchema { schema, strict: false }));
        assert!(
            openai(json!({ "response_format": { "type": "json_schema", "json_schema": { "name": "n" } } })).is_err()
        );
        assert!(openai(json!({ "response_format": { "type": "xml" } })).is_err());
    }

    #[test]
    fn structured_outputs_takes_exactly_one_constraint() {
        let so = |v: Value| openai(json!({ "structured_outputs": v }));
        assert_eq!(so(json!({ "regex": "[a-z]+" })).unwrap(), Some(Grammar::Regex("[a-z]+".into())));
        assert_eq!(so(json!({ "grammar": "start: \"x\"" })).unwrap(), Some(Grammar::Lark("start: \"x\"".into())));
        assert_eq!(so(json!({ "choice": ["a", "b"] })).unwrap(), Some(Grammar::Choice(vec!["a".into(), "b".into()])));
        assert_eq!(so(json!({ "json_object": true })).unwrap(), Some(Grammar::JsonObject));
        let schema = json!({ "type": "string" });
        let want = Some(Grammar::JsonSchema { schema: schema.clone(), strict: true });
        assert_eq!(so(json!({ "json": schema })).unwrap(), want);
        assert_eq!(so(json!({ "json": schema.to_string() })).unwrap(), want);
        assert!(so(json!({ "json": "{not json" })).is_err());
        assert!(so(json!({})).is_err());
        assert!(so(json!({ "regex": "a", "choice": ["a"] })).is_err());
        assert!(so(json!({ "regexp": "a" })).is_err(), "a misspelt field is refused, not ignored");
        let both = json!({ "response_format": { "type": "json_object" }, "structured_outputs": { "regex": "a" } });
        assert!(openai(both).is_err());
    }
}
