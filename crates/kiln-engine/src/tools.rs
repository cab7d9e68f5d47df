//! Tool calls: how each model family writes a call to a function, told from its chat template;
//! a streaming parser that lifts those calls out of the answer text; and the grammar that
//! forces a call (OpenAI's `tool_choice` `required` or a named function).
//!
//! Text before a call streams as content; a call is emitted whole once complete; a call that
//! does not parse is given back as the content it was.

use crate::constraint::Grammar;
use crate::reasoning::partial_tag_len;
use serde_json::{json, Map, Value};

/// How a family of models writes its tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// Qwen 2.5/3, Hermes, SmolLM3: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`.
    Hermes,
    /// Llama 3.x: a bare JSON object `{"name": …, "parameters": {…}}` as the whole answer, or
    /// after `<|python_tag|>`; several calls separated by `;`.
    Llama3,
    /// Mistral: `[TOOL_CALLS][{"name": …, "arguments": {…}}]`, or the newer
    /// `[TOOL_CALLS]name[ARGS]{…}`.
    Mistral,
    /// DeepSeek V3/R1: calls between `<｜tool▁calls▁begin｜>` and `<｜tool▁calls▁end｜>`.
    DeepSeek,
}

const DS_CALLS_BEGIN: &str = "<｜tool▁calls▁begin｜>";
const DS_CALLS_END: &str = "<｜tool▁calls▁end｜>";
const DS_CALL_BEGIN: &str = "<｜tool▁call▁begin｜>";
const DS_CALL_END: &str = "<｜tool▁call▁end｜>";
const DS_SEP: &str = "<｜tool▁sep｜>";

impl ToolFormat {
    /// The format a chat template (Jinja or Go) shows its model calling tools in; `None`: the
    /// template has no tool calls, so the model does not support tools.
    pub fn of_template(template: &str) -> Option<ToolFormat> {
        if template.contains("tool▁calls▁begin") {
            Some(ToolFormat::DeepSeek)
        } else if template.contains("[TOOL_CALLS]") {
            Some(ToolFormat::Mistral)
        } else if template.contains("<tool_call>") {
            Some(ToolFormat::Hermes)
        } else if template.contains("<|python_tag|>")
            || (template.contains("<|start_header_id|>") && template.contains("\"parameters\""))
        {
            Some(ToolFormat::Llama3)
        } else {
            None
        }
    }

    /// The text that opens a call, and the one that closes it (`None`: the call runs to the
    /// end of the answer).
    fn markers(self) -> (&'static str, Option<&'static str>) {
        match self {
            ToolFormat::Hermes => ("<tool_call>", Some("</tool_call>")),
            ToolFormat::Llama3 => ("<|python_tag|>", None),
            ToolFormat::Mistral => ("[TOOL_CALLS]", None),
            ToolFormat::DeepSeek => (DS_CALLS_BEGIN, Some(DS_CALLS_END)),
        }
    }

    /// Llama 3 models answer with a bare JSON object when they call a tool.
    fn leading_json(self) -> bool {
        self == ToolFormat::Llama3
    }

    /// The calls written between the markers, or `None` if they do not parse.
    fn parse(self, body: &str) -> Option<Vec<ToolCall>> {
        let calls = match self {
            ToolFormat::Hermes => vec![ToolCall::from_json(&serde_json::from_str(body.trim()).ok()?)?],
            ToolFormat::Llama3 => body
                .split(';')
                .map(|c| ToolCall::from_json(&serde_json::from_str(c.trim()).ok()?))
                .collect::<Option<_>>()?,
            ToolFormat::Mistral => parse_mistral(body.trim())?,
            ToolFormat::DeepSeek => parse_deepseek(body)?,
        };
        (!calls.is_empty()).then_some(calls)
    }

    /// A grammar under which the answer can only be one call, in this format, of one of
    /// `tools` (OpenAI's `{type: "function", function: {name, parameters}}`), or of the one
    /// named `only`.
    pub fn forced_grammar(self, tools: &[Value], only: Option<&str>) -> Result<Grammar, ToolError> {
        let functions: Vec<(&str, Value)> = tools
            .iter()
            .filter_map(|t| {
                let f = t.get("function")?;
                let params = f.get("parameters").cloned().unwrap_or_else(|| json!({ "type": "object" }));
                Some((f.get("name")?.as_str()?, params))
            })
            .filter(|(name, _)| only.is_none_or(|o| o == *name))
            .collect();
        if functions.is_empty() {
            return Err(ToolError::NoSuchTool(only.unwrap_or_default().to_string()));
        }
        let lit = |s: &str| Value::from(s).to_string();
        let args_key = if self == ToolFormat::Llama3 { "parameters" } else { "arguments" };
        let object = |name: &str, params: &Value| {
            let schema = json!({
                "type": "object",
                "properties": { "name": { "const": name }, args_key: params },
                "required": ["name", args_key],
                "additionalProperties": false,
            });
            format!("%json {schema}")
        };
        let alternatives: Vec<String> = functions
            .iter()
            .map(|(name, params)| match self {
                ToolFormat::DeepSeek => format!(
                    "{} %json {} {}",
                    lit(&format!("{DS_CALL_BEGIN}function{DS_SEP}{name}\n```json\n")),
                    params,
                    lit(&format!("\n```{DS_CALL_END}"))
                ),
                _ => object(name, params),
            })
            .collect();
        let (before, after) = match self {
            ToolFormat::Hermes => ("<tool_call>\n", "\n</tool_call>"),
            ToolFormat::Llama3 => ("", ""),
            ToolFormat::Mistral => ("[TOOL_CALLS][", "]"),
            ToolFormat::DeepSeek => (DS_CALLS_BEGIN, DS_CALLS_END),
        };
        let rules: Vec<String> = alternatives.iter().enumerate().map(|(i, a)| format!("call{i}: {a}")).collect();
        let names: Vec<String> = (0..alternatives.len()).map(|i| format!("call{i}")).collect();
        let mut start = vec![format!("({})", names.join(" | "))];
        if !before.is_empty() {
            start.insert(0, lit(before));
            start.push(lit(after));
        }
        Ok(Grammar::Lark(format!("start: {}\n{}\n", start.join(" "), rules.join("\n"))))
    }
}

/// Whether the model may or must call a tool (OpenAI's `tool_choice`). With `None` the tools
/// are still shown to the model (as OpenAI does) but nothing it writes is taken as a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    #[default]
    Auto,
    None,
    Required,
    Function(String),
}

impl ToolChoice {
    /// The function a forced call must be of (`Some(None)`: any of the tools); `None`: not forced.
    pub fn forced(&self) -> Option<Option<&str>> {
        match self {
            ToolChoice::Required => Some(None),
            ToolChoice::Function(name) => Some(Some(name)),
            ToolChoice::Auto | ToolChoice::None => None,
        }
    }
}

/// Why tools cannot be forced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("tool_choice names a function that is not among the tools: {0:?}")]
    NoSuchTool(String),
}

/// One call of a function, with its arguments as a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Map<String, Value>,
}

impl ToolCall {
    /// `{"name": …, "arguments" | "parameters": {…}}`; arguments may come as JSON text.
    fn from_json(v: &Value) -> Option<ToolCall> {
        let name = v.get("name")?.as_str()?.to_string();
        let args = v.get("arguments").or_else(|| v.get("parameters")).cloned().unwrap_or_else(|| json!({}));
        ToolCall::new(name, args)
    }

    fn new(name: String, args: Value) -> Option<ToolCall> {
        let args = match args {
            Value::String(text) => serde_json::from_str(&text).ok()?,
            args => args,
        };
        match args {
            Value::Object(arguments) if !name.is_empty() => Some(ToolCall { name, arguments }),
            _ => None,
        }
    }
}

/// `[{…}, …]`, or `name[ARGS]{…}` repeated (each after its own `[TOOL_CALLS]` or not).
fn parse_mistral(body: &str) -> Option<Vec<ToolCall>> {
    if body.starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(body).ok()?;
        return list.iter().map(ToolCall::from_json).collect();
    }
    let mut calls = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("[ARGS]")?;
        let mut stream = serde_json::Deserializer::from_str(after).into_iter::<Value>();
        let args = stream.next()?.ok()?;
        rest = after[stream.byte_offset()..].trim_start();
        rest = rest.strip_prefix("[TOOL_CALLS]").unwrap_or(rest);
        calls.push(ToolCall::new(name.trim().to_string(), args)?);
    }
    Some(calls)
}

/// `<｜tool▁call▁begin｜>function<｜tool▁sep｜>name\n```json\n{…}\n```<｜tool▁call▁end｜>` (V3, R1)
/// or `<｜tool▁call▁begin｜>name<｜tool▁sep｜>{…}<｜tool▁call▁end｜>` (V3.1), repeated.
fn parse_deepseek(body: &str) -> Option<Vec<ToolCall>> {
    let body = body.trim();
    let calls = body.strip_prefix(DS_CALL_BEGIN)?;
    calls
        .split(DS_CALL_BEGIN)
        .map(|call| {
            let call = call.trim().strip_suffix(DS_CALL_END)?;
            let (head, tail) = call.split_once(DS_SEP)?;
            let (name, args) = match head {
                "function" => tail.split_once('\n')?,
                name => (name, tail),
            };
            let args = args.trim();
            let args = args.strip_prefix("```json").and_then(|a| a.strip_suffix("```")).unwrap_or(args);
            ToolCall::new(name.trim().to_string(), serde_json::from_str(args.trim()).ok()?)
        })
        .collect()
}

/// A piece of a parsed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Content(String),
    Call(ToolCall),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing but whitespace yet (formats whose call may be the bare answer).
    Start,
    /// Ordinary text; `fresh`: right after a call, where whitespace is dropped.
    Text { fresh: bool },
    /// Inside a call (held, not including its opening marker).
    Call,
}

/// Splits streamed answer text into content and tool calls.
#[derive(Debug, Clone)]
pub struct ToolCallSplitter {
    format: ToolFormat,
    phase: Phase,
    held: String,
    /// The call in progress opened with the marker (not as bare leading JSON).
    marked: bool,
}

impl ToolCallSplitter {
    pub fn new(format: ToolFormat) -> ToolCallSplitter {
        let phase = if format.leading_json() { Phase::Start } else { Phase::Text { fresh: true } };
        ToolCallSplitter { format, phase, held: String::new(), marked: false }
    }

    /// Takes the next piece of the answer and returns what can be told apart so far.
    pub fn push(&mut self, text: &str) -> Vec<Part> {
        self.held.push_str(text);
        let mut out = Vec::new();
        let (open, close) = self.format.markers();
        loop {
            match self.phase {
                Phase::Start => {
                    let rest = self.held.trim_start();
                    if rest.is_empty() {
                        return out;
                    }
                    if rest.starts_with('{') {
                        self.held = rest.to_string();
                        self.marked = false;
                        self.phase = Phase::Call;
                    } else {
                        self.phase = Phase::Text { fresh: true };
                    }
                }
                Phase::Text { fresh } => {
                    if fresh {
                        self.held = self.held.trim_start().to_string();
                    }
                    if let Some(at) = self.held.find(open) {
                        content(&mut out, self.held[..at].trim_end());
                        self.held = self.held[at + open.len()..].to_string();
                        self.marked = true;
                        self.phase = Phase::Call;
                        continue;
                    }
                    // Whitespace waits for what follows: before a call, it is dropped.
                    let keep = partial_tag_len(&self.held, open);
                    let ready = self.held[..self.held.len() - keep].trim_end().len();
                    content(&mut out, &self.held[..ready]);
                    self.held.drain(..ready);
                    self.phase = Phase::Text { fresh: fresh && ready == 0 };
                    return out;
                }
                Phase::Call => {
                    let Some(close) = close.filter(|_| self.marked) else { return out };
                    let Some(at) = self.held.find(close) else { return out };
                    let body = self.held[..at].to_string();
                    self.held.drain(..at + close.len());
                    self.end_call(&mut out, &body, close);
                }
            }
        }
    }

    /// The end of the answer: a call still open is parsed as it stands.
    pub fn finish(&mut self) -> Vec<Part> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::new();
        match self.phase {
            Phase::Call => self.end_call(&mut out, &held, ""),
            Phase::Text { fresh: true } => content(&mut out, held.trim()),
            Phase::Start | Phase::Text { fresh: false } => content(&mut out, &held),
        }
        out
    }

    /// Emits the calls in `body`, or the text they were written as when they do not parse.
    fn end_call(&mut self, out: &mut Vec<Part>, body: &str, close: &str) {
        let parsed = self.format.parse(body);
        self.phase = Phase::Text { fresh: parsed.is_some() };
        match parsed {
            Some(calls) => out.extend(calls.into_iter().map(Part::Call)),
            None => {
                let open = if self.marked { self.format.markers().0 } else { "" };
                content(out, &format!("{open}{body}{close}"));
            }
        }
    }
}

/// Appends text to the content, merging it with content just before.
fn content(out: &mut Vec<Part>, text: &str) {
    if text.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(Part::Content(c)) => c.push_str(text),
        _ => out.push(Part::Content(text.to_string())),
    }
}

#[cfg(test)]
mod tests;
