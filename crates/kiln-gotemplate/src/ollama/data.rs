//! Builds the Go values Ollama hands to templates: a `map[string]any` at the
//! top, typed structs for messages and tools (unknown fields are errors), and
//! the `String()`/JSON forms of its tool and argument types.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Message, Think};
use crate::format::{json_string, to_json};
use crate::value::{Meta, Value};

pub(crate) const TOOL_PROPERTY: &str = "api.ToolProperty";

/// `.Think`, `.ThinkLevel` and `.IsThinkSet`.
pub(super) struct ThinkFields {
    think: bool,
    level: String,
    is_set: bool,
}

impl ThinkFields {
    pub fn new(think: Option<&Think>) -> ThinkFields {
        ThinkFields {
            think: think.is_some_and(Think::enabled),
            level: think.map(Think::level).unwrap_or_default(),
            is_set: think.is_some(),
        }
    }

    fn add_to(&self, m: &mut BTreeMap<String, Value>) {
        m.insert("Think".into(), Value::Bool(self.think));
        m.insert("ThinkLevel".into(), Value::str(self.level.as_str()));
        m.insert("IsThinkSet".into(), Value::Bool(self.is_set));
    }
}

fn top(fields: Vec<(&str, Value)>, think: &ThinkFields) -> Value {
    let mut m: BTreeMap<String, Value> = fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    // Only legacy turns carry a response; the other forms always pass "".
    m.entry("Response".into()).or_insert_with(|| Value::str(""));
    think.add_to(&mut m);
    Value::map(m, Meta::default())
}

pub(super) fn fill_in_middle(prompt: &str, suffix: &str, think: &ThinkFields) -> Value {
    top(vec![("Prompt", Value::str(prompt)), ("Suffix", Value::str(suffix))], think)
}

pub(super) fn turn(system: &str, prompt: &str, response: &str, think: &ThinkFields) -> Value {
    top(vec![("System", Value::str(system)), ("Prompt", Value::str(prompt)), ("Response", Value::str(response))], think)
}

pub(super) fn conversation(system: &str, messages: &[Message], tools: &[Json], think: &ThinkFields) -> Value {
    let messages = Value::list(messages.iter().map(message).collect(), Meta::default());
    top(vec![("System", Value::str(system)), ("Messages", messages), ("Tools", tool_list(tools))], think)
}

fn structure(name: &'static str, fields: Vec<(&str, Value)>, json: Option<String>) -> Value {
    let entries = fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Value::map(entries, Meta { struct_name: Some(name), display: json.clone(), json })
}

fn strings(items: &[&str]) -> Value {
    Value::list(items.iter().map(|s| Value::str(*s)).collect(), Meta::default())
}

fn message(m: &Message) -> Value {
    let calls = m.tool_calls.iter().map(|c| {
        let args = match &c.arguments {
            Json::Object(_) => Value::from_json(&c.arguments),
            _ => Value::map(BTreeMap::new(), Meta::default()),
        };
        // templateArgs prints (and marshals) as JSON; nil prints as {}.
        let text = match &args {
            Value::Map(a) if !a.entries.is_empty() => to_json(&args),
            _ => "{}".to_string(),
        };
        let Value::Map(mut a) = args else { unreachable!("arguments are a map") };
        std::rc::Rc::make_mut(&mut a).meta = Meta { struct_name: None, display: Some(text.clone()), json: Some(text) };
        let function = structure(
            "template.templateToolCallFunction",
            vec![("Index", Value::Int(c.index)), ("Name", Value::str(c.name.as_str())), ("Arguments", Value::Map(a))],
            None,
        );
        structure("template.templateToolCall", vec![("ID", Value::str(c.id.as_str())), ("Function", function)], None)
    });
    structure(
        "*template.templateMessage",
        vec![
            ("Role", Value::str(m.role.as_str())),
            ("Content", Value::str(m.content.as_str())),
            ("Thinking", Value::str(m.thinking.as_str())),
            ("Images", Value::list(Vec::new(), Meta::default())),
            ("ToolCalls", Value::list(calls.collect(), Meta::default())),
            ("ToolName", Value::str(m.tool_name.as_str())),
            ("ToolCallID", Value::str(m.tool_call_id.as_str())),
        ],
        None,
    )
}

/// `templateTools`, which prints as its JSON (`null` when there are no tools).
fn tool_list(tools: &[Json]) -> Value {
    let items: Vec<Value> = tools.iter().map(tool).collect();
    let text = if items.is_empty() {
        "null".to_string()
    } else {
        format!("[{}]", items.iter().map(to_json).collect::<Vec<_>>().join(","))
    };
    Value::list(items, Meta { struct_name: None, display: Some(text.clone()), json: Some(text) })
}

/// Go's JSON of a struct: fields in declaration order, `None` for omitted ones.
fn json_object(fields: &[(&str, Option<String>)]) -> String {
    let mut out = String::from("{");
    for (k, v) in fields.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v))) {
        if out.len() > 1 {
            out.push(',');
        }
        json_string(&mut out, k);
        out.push(':');
        out.push_str(v);
    }
    out.push('}');
    out
}

fn any_field(j: &Json, key: &str) -> Value {
    j.get(key).map_or(Value::Nil, Value::from_json)
}

fn omitempty_any(v: &Value) -> Option<String> {
    (!matches!(v, Value::Nil)).then(|| to_json(v))
}

fn str_field<'a>(j: &'a Json, key: &str) -> &'a str {
    j.get(key).and_then(Json::as_str).unwrap_or("")
}

fn str_list<'a>(j: &'a Json, key: &str) -> Vec<&'a str> {
    j.get(key).and_then(Json::as_array).map_or(Vec::new(), |a| a.iter().filter_map(Json::as_str).collect())
}

fn quoted(s: &str) -> String {
    let mut out = String::new();
    json_string(&mut out, s);
    out
}

fn tool(t: &Json) -> Value {
    let f = t.get("function").unwrap_or(&Json::Null);
    let p = f.get("parameters").unwrap_or(&Json::Null);
    let required = str_list(p, "required");
    let (props, props_json) = properties(p.get("properties"));
    let (defs, p_items, t_items) = (any_field(p, "$defs"), any_field(p, "items"), any_field(t, "items"));
    let params_json = json_object(&[
        ("type", Some(quoted(str_field(p, "type")))),
        ("$defs", omitempty_any(&defs)),
        ("items", omitempty_any(&p_items)),
        ("required", (!required.is_empty()).then(|| to_json(&strings(&required)))),
        ("properties", Some(props_json)),
    ]);
    let function_json = json_object(&[
        ("name", Some(quoted(str_field(f, "name")))),
        ("description", Some(quoted(str_field(f, "description")))),
        ("parameters", Some(params_json.clone())),
    ]);
    let tool_json = json_object(&[
        ("type", Some(quoted(str_field(t, "type")))),
        ("items", omitempty_any(&t_items)),
        ("function", Some(function_json.clone())),
    ]);
    let params = structure(
        "template.templateToolFunctionParameters",
        vec![
            ("Type", Value::str(str_field(p, "type"))),
            ("Defs", defs),
            ("Items", p_items),
            ("Required", strings(&required)),
            ("Properties", props),
        ],
        Some(params_json),
    );
    let function = structure(
        "template.templateToolFunction",
        vec![
            ("Name", Value::str(str_field(f, "name"))),
            ("Description", Value::str(str_field(f, "description"))),
            ("Parameters", params),
        ],
        None,
    );
    structure(
        "template.templateTool",
        vec![("Type", Value::str(str_field(t, "type"))), ("Items", t_items), ("Function", function)],
        Some(tool_json),
    )
}

/// A properties map (`templateProperties`, printed as JSON) and its JSON.
fn properties(j: Option<&Json>) -> (Value, String) {
    let Some(Json::Object(o)) = j else {
        let meta = Meta { struct_name: None, display: Some("{}".into()), json: Some("null".into()) };
        return (Value::map(BTreeMap::new(), meta), "null".into());
    };
    let mut entries = BTreeMap::new();
    let mut parts = Vec::new();
    let sorted: BTreeMap<&String, &Json> = o.iter().collect();
    for (name, p) in sorted {
        let (v, text) = property(p);
        parts.push(format!("{}:{text}", quoted(name)));
        entries.insert(name.clone(), v);
    }
    let text = format!("{{{}}}", parts.join(","));
    (Value::map(entries, Meta { struct_name: None, display: Some(text.clone()), json: Some(text.clone()) }), text)
}

/// An `api.ToolProperty` struct and its JSON (`type` is a string when single).
fn property(p: &Json) -> (Value, String) {
    let types: Vec<&str> = match p.get("type") {
        Some(Json::String(s)) => vec![s.as_str()],
        _ => str_list(p, "type"),
    };
    let any_of: Vec<(Value, String)> =
        p.get("anyOf").and_then(Json::as_array).map_or(Vec::new(), |a| a.iter().map(property).collect());
    let (nested, nested_json) = match p.get("properties") {
        Some(j @ Json::Object(_)) => {
            let (v, t) = properties(Some(j));
            (v, Some(t))
        }
        _ => (Value::Nil, None),
    };
    let required = str_list(p, "required");
    let (items, enum_) = (any_field(p, "items"), any_field(p, "enum"));
    let type_json = match types.as_slice() {
        [] => None,
        [one] => Some(quoted(one)),
        many => Some(to_json(&strings(many))),
    };
    let description = str_field(p, "description");
    let text = json_object(&[
        (
            "anyOf",
            (!any_of.is_empty())
                .then(|| format!("[{}]", any_of.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(","))),
        ),
        ("type", type_json),
        ("items", omitempty_any(&items)),
        ("description", (!description.is_empty()).then(|| quoted(description))),
        ("enum", omitempty_any(&enum_).filter(|e| e != "[]")),
        ("properties", nested_json),
        ("required", (!required.is_empty()).then(|| to_json(&strings(&required)))),
    ]);
    let value = structure(
        TOOL_PROPERTY,
        vec![
            ("AnyOf", Value::list(any_of.into_iter().map(|(v, _)| v).collect(), Meta::default())),
            ("Type", strings(&types)),
            ("Items", items),
            ("Description", Value::str(description)),
            ("Enum", enum_),
            ("Properties", nested),
            ("Required", strings(&required)),
        ],
        None,
    );
    (value, text)
}
