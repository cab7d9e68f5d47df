//! Chat templates: renders the Jinja template a model ships in GGUF
//! `tokenizer.chat_template` into the prompt text the model was trained on.
//!
//! These templates are written for Hugging Face transformers, which renders them with
//! Python's jinja2 in a particular configuration. We use minijinja set up to match it, since
//! a single stray newline or space in the prompt measurably changes model output:
//!
//! - `trim_blocks` and `lstrip_blocks` on, a single trailing newline dropped, no
//!   auto-escaping;
//! - `{% break %}` / `{% continue %}` (jinja2's loopcontrols extension) and `namespace()`;
//! - Python methods on strings, lists and dicts (`.strip()`, `.startswith()`, `.items()`,
//!   ...) via minijinja-contrib's pycompat callback;
//! - the globals `raise_exception(msg)` (becomes [`TemplateError::Raised`]) and
//!   `strftime_now(format)`, and `tojson` implemented as Python's `json.dumps`;
//! - `bos_token` and `eos_token` as variables.
//!
//! Not supported: transformers' `{% generation %}` blocks (assistant-mask tracking for
//! training, irrelevant to inference).

mod pyjson;
mod strftime;

/// C-style `strftime` of a Unix timestamp in UTC (the templates' `strftime_now` uses it too).
pub use strftime::strftime;

use minijinja::value::{from_args, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, Value};
use serde::Serialize;

/// One turn of a conversation. The tool fields are left out of the template's view when
/// unset, so templates that test `message.tool_calls is defined` see what transformers shows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    /// The calls an assistant turn made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChatToolCall>,
    /// On a tool result: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// On a tool result: the function that gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }
}

/// A call in an assistant turn, in the shape transformers' templates read:
/// `{id, type: "function", function: {name, arguments}}`, arguments an object.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: ChatFunction,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatFunction {
    pub name: String,
    pub arguments: serde_json::Value,
}

impl ChatToolCall {
    pub fn new(id: Option<String>, name: impl Into<String>, arguments: serde_json::Value) -> Self {
        ChatToolCall { id, kind: "function".into(), function: ChatFunction { name: name.into(), arguments } }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template does not compile; the message names the problem and line.
    #[error("invalid chat template: {0}")]
    Syntax(#[source] Error),
    /// The template called `raise_exception(message)`, typically to reject a conversation
    /// shape the model does not support (e.g. non-alternating roles).
    #[error("chat template rejected the conversation: {0}")]
    Raised(String),
    /// Rendering failed for another reason (undefined value, type error, ...).
    #[error("chat template failed to render: {0}")]
    Render(#[source] Error),
}

/// The name the template is registered under, which minijinja shows in error locations.
const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template, ready to render conversations.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source` once; `bos_token`/`eos_token` are the token strings templates
    /// reference as variables.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, TemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(python_method);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_filter("tojson", pyjson::tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", |format: &str| strftime::strftime_now(format));
        env.add_template_owned(TEMPLATE_NAME, source.to_owned()).map_err(TemplateError::Syntax)?;
        Ok(ChatTemplate { env, bos_token: bos_token.to_owned(), eos_token: eos_token.to_owned() })
    }

    /// Renders `messages`; `add_generation_prompt` appends the header of an assistant turn
    /// so that the model continues as the assistant.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, TemplateError> {
        self.render_value(messages, add_generation_prompt, Value::UNDEFINED)
    }

    /// Like [`render`](Self::render), with additional template variables taken from the
    /// fields of `extra` (for example `tools`, `documents` or `enable_thinking`). `messages`,
    /// `add_generation_prompt` and the special tokens take precedence over same-named fields.
    pub fn render_with<S: Serialize>(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: S,
    ) -> Result<String, TemplateError> {
        self.render_value(messages, add_generation_prompt, Value::from_serialize(extra))
    }

    fn render_value(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: Value,
    ) -> Result<String, TemplateError> {
        let base = minijinja::context! {
            messages,
            add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        };
        let ctx = if extra.kind() == ValueKind::Map {
            // Later maps win lookups.
            minijinja::value::merge_maps([extra, base])
        } else {
            base
        };
        let template = self.env.get_template(TEMPLATE_NAME).map_err(TemplateError::Render)?;
        template.render(ctx).map_err(classify)
    }
}

/// Python methods on template values: minijinja-contrib's pycompat, except `str.title`,
/// whose Python semantics (a word starts after any uncased character, so `"¿qué"` becomes
/// `"¿Qué"`) differ from minijinja's `title` filter.
fn python_method(state: &State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    match (method, value.as_str()) {
        ("title", Some(s)) => {
            let () = from_args(args)?;
            Ok(Value::from(python_title(s)))
        }
        _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
    }
}

fn python_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut previous_is_cased = false;
    for c in s.chars() {
        let cased = c.is_lowercase() || c.is_uppercase();
        match (cased, previous_is_cased) {
            (true, false) => out.extend(c.to_uppercase()),
            (true, true) => out.extend(c.to_lowercase()),
            (false, _) => out.push(c),
        }
        previous_is_cased = cased;
    }
    out
}

/// Marks an error as coming from the template's own `raise_exception`, so that it can be
/// told apart from engine errors however minijinja wraps it.
#[derive(Debug)]
struct RaisedException(String);

impl std::fmt::Display for RaisedException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message.clone()).with_source(RaisedException(message)))
}

fn classify(err: Error) -> TemplateError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(raised) = e.downcast_ref::<RaisedException>() {
            return TemplateError::Raised(raised.0.clone());
        }
        source = e.source();
    }
    TemplateError::Render(err)
}

#[cfg(test)]
mod tests;
