//! Go's builtin template functions (except the lazily evaluated `and`/`or`,
//! which live in the executor) and Ollama's extra functions.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::format::{sprint, sprint_value, sprintln, to_json};
use crate::printf::sprintf;
use crate::value::Value;

/// Which function map a template is parsed and executed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuncSet {
    /// Only Go's builtins.
    Builtins,
    /// Go's builtins plus Ollama's `json`, `currentDate`, `yesterdayDate`, `toTypeScriptType`.
    Ollama,
}

const BUILTINS: [&str; 18] = [
    "and", "or", "not", "len", "index", "slice", "eq", "ne", "lt", "le", "gt", "ge", "print", "printf", "println",
    "html", "js", "urlquery",
];
const OLLAMA: [&str; 4] = ["json", "currentDate", "yesterdayDate", "toTypeScriptType"];

impl FuncSet {
    pub fn contains(self, name: &str) -> bool {
        BUILTINS.contains(&name) || self == FuncSet::Ollama && OLLAMA.contains(&name)
    }
}

/// Arity as Go's signatures declare it: (fixed parameters, variadic?).
pub(crate) fn arity(name: &str) -> (usize, bool) {
    match name {
        "not" | "len" | "json" | "toTypeScriptType" => (1, false),
        "ne" | "lt" | "le" | "gt" | "ge" => (2, false),
        "and" | "or" | "eq" | "index" | "slice" | "printf" => (1, true),
        _ => (0, true),
    }
}

/// Calls a non-lazy function on evaluated arguments; errors are plain messages.
pub(crate) fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    Ok(match name {
        "not" => Value::Bool(!args[0].is_true()),
        "len" => Value::Int(length(&args[0])?),
        "index" => index(&args[0], &args[1..])?,
        "slice" => slice(&args[0], &args[1..])?,
        "eq" => Value::Bool(eq(&args[0], &args[1..])?),
        "ne" => Value::Bool(!eq(&args[0], &args[1..])?),
        "lt" => Value::Bool(compare(&args[0], &args[1])?.is_lt()),
        "le" => Value::Bool(compare(&args[0], &args[1])?.is_le()),
        "gt" => Value::Bool(compare(&args[0], &args[1])?.is_gt()),
        "ge" => Value::Bool(compare(&args[0], &args[1])?.is_ge()),
        "print" => Value::str(sprint(args)),
        "println" => Value::str(sprintln(args)),
        "printf" => match &args[0] {
            Value::Str(f) => Value::str(sprintf(f, &args[1..])),
            other => return Err(format!("wrong type for value; expected string; got {}", other.type_name())),
        },
        "html" => Value::str(html_escape(&escaper_input(args))),
        "js" => Value::str(js_escape(&escaper_input(args))),
        "urlquery" => Value::str(query_escape(&escaper_input(args))),
        "json" => Value::str(to_json(&args[0])),
        "currentDate" => Value::str(date_days_ago(0)),
        "yesterdayDate" => Value::str(date_days_ago(1)),
        "toTypeScriptType" => Value::str(typescript_type(&args[0])),
        other => return Err(format!("{other:?} is not a defined function")),
    })
}

fn int_arg(v: &Value, what: &str) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Missing | Value::Nil => Err(format!("cannot index {what} with nil")),
        other => Err(format!("cannot index {what} with type {}", other.type_name())),
    }
}

fn length(v: &Value) -> Result<i64, String> {
    match v {
        Value::Str(s) => Ok(s.len() as i64),
        Value::List(l) => Ok(l.items.len() as i64),
        Value::Map(m) if m.meta.struct_name.is_none() => Ok(m.entries.len() as i64),
        Value::Missing | Value::Nil => Err("len of nil pointer".into()),
        other => Err(format!("len of type {}", other.type_name())),
    }
}

fn index(item: &Value, indices: &[Value]) -> Result<Value, String> {
    let mut item = item.clone();
    for ix in indices {
        item = match &item {
            Value::List(l) => {
                let i = int_arg(ix, "slice/array")?;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| l.items.get(i).cloned())
                    .ok_or_else(|| format!("error calling index: index out of range: {i}"))?
            }
            Value::Str(s) => {
                let i = int_arg(ix, "slice/array")?;
                let b = usize::try_from(i).ok().and_then(|i| s.as_bytes().get(i).copied());
                Value::Int(b.ok_or_else(|| format!("error calling index: index out of range: {i}"))? as i64)
            }
            Value::Map(m) if m.meta.struct_name.is_none() => match ix {
                Value::Str(k) => m.entries.get(&**k).cloned().unwrap_or(Value::Nil),
                other => return Err(format!("value has type {}; should be string", other.type_name())),
            },
            Value::Missing | Value::Nil => return Err("index of untyped nil".into()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(item: &Value, indices: &[Value]) -> Result<Value, String> {
    if indices.len() > 3 {
        return Err(format!("too many slice indexes: {}", indices.len()));
    }
    let len = match item {
        Value::Str(s) if indices.len() == 3 => return Err(format!("cannot 3-index slice a string: {s}")),
        Value::Str(s) => s.len(),
        Value::List(l) => l.items.len(),
        Value::Missing | Value::Nil => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = [0, len, len];
    for (i, ix) in indices.iter().enumerate() {
        let v = int_arg(ix, "slice/array")?;
        bounds[i] = usize::try_from(v).ok().filter(|&v| v <= len).ok_or_else(|| format!("index out of range: {v}"))?;
    }
    if bounds[0] > bounds[1] || (indices.len() == 3 && bounds[1] > bounds[2]) {
        return Err(format!("invalid slice index: {} > {}", bounds[0], bounds[1]));
    }
    Ok(match item {
        Value::Str(s) => {
            let sub = s.get(bounds[0]..bounds[1]).ok_or("slice splits a UTF-8 sequence")?;
            Value::str(sub)
        }
        Value::List(l) => Value::list(l.items[bounds[0]..bounds[1]].to_vec(), Default::default()),
        _ => unreachable!("checked above"),
    })
}

/// Go's basic kinds for comparison; `None` for values with no basic kind.
#[derive(PartialEq)]
enum Basic<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

fn basic(v: &Value) -> Option<Basic<'_>> {
    match v {
        Value::Bool(b) => Some(Basic::Bool(*b)),
        Value::Int(i) => Some(Basic::Int(*i)),
        Value::Float(f) => Some(Basic::Float(*f)),
        Value::Str(s) => Some(Basic::Str(s)),
        _ => None,
    }
}

fn is_nil(v: &Value) -> bool {
    matches!(v, Value::Missing | Value::Nil)
}

fn eq(a: &Value, rest: &[Value]) -> Result<bool, String> {
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for b in rest {
        let same = match (basic(a), basic(b)) {
            (Some(x), Some(y)) if std::mem::discriminant(&x) == std::mem::discriminant(&y) => x == y,
            (Some(_), Some(_)) => return Err("incompatible types for comparison".into()),
            _ if is_nil(a) || is_nil(b) => is_nil(a) && is_nil(b),
            (Some(_), None) | (None, Some(_)) => return Err("incompatible types for comparison".into()),
            (None, None) => return Err(format!("non-comparable type {}", a.type_name())),
        };
        if same {
            return Ok(true);
        }
    }
    Ok(false)
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    let ord = match (basic(a), basic(b)) {
        (Some(Basic::Int(x)), Some(Basic::Int(y))) => x.partial_cmp(&y),
        (Some(Basic::Float(x)), Some(Basic::Float(y))) => x.partial_cmp(&y),
        (Some(Basic::Str(x)), Some(Basic::Str(y))) => x.partial_cmp(y),
        (Some(Basic::Bool(_)), Some(Basic::Bool(_))) | (None, _) | (_, None) => {
            return Err("invalid type for comparison".into());
        }
        _ => return Err("incompatible types for comparison".into()),
    };
    // NaN never orders; Go reports such comparisons as false, Less is a safe stand-in for !ge.
    Ok(ord.unwrap_or(std::cmp::Ordering::Less))
}

/// Go's `evalArgs` for the escapers: a lone string as is, otherwise `Sprint`.
fn escaper_input(args: &[Value]) -> String {
    match args {
        [Value::Str(s)] => s.to_string(),
        _ => sprint(args),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if (c as u32) < 0x20 || c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Today's (or an earlier) date as YYYY-MM-DD in UTC; Ollama formats local
/// time, which equals UTC on servers and containers without a zone set.
fn date_days_ago(days: i64) -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    civil_date(secs.div_euclid(86_400) - days)
}

/// Days since 1970-01-01 as YYYY-MM-DD.
fn civil_date(days: i64) -> String {
    let (year, month, day) = crate::calendar::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Ollama's `ToolProperty.ToTypeScriptType`; anything that is not a tool
/// property (a struct carrying `Type`) maps to `any`.
fn typescript_type(v: &Value) -> String {
    let Value::Map(m) = v else { return "any".into() };
    if m.meta.struct_name != Some(crate::ollama::TOOL_PROPERTY) {
        return "any".into();
    }
    if let Some(Value::List(any_of)) = m.entries.get("AnyOf") {
        if !any_of.items.is_empty() {
            return any_of.items.iter().map(typescript_type).collect::<Vec<_>>().join(" | ");
        }
    }
    let types: Vec<String> = match m.entries.get("Type") {
        Some(Value::List(l)) => l.items.iter().map(sprint_value).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        return "any".into();
    }
    let ts = |t: &str| match t {
        "string" => "string",
        "number" | "integer" => "number",
        "boolean" => "boolean",
        "array" => "any[]",
        "object" => "Record<string, any>",
        "null" => "null",
        _ => "any",
    };
    types.iter().map(|t| ts(t)).collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    #[test]
    fn comparisons() {
        assert_eq!(eq(&Value::Int(1), &[Value::Int(2), Value::Int(1)]), Ok(true));
        assert_eq!(eq(&Value::Missing, &[Value::str("")]), Ok(false));
        assert!(eq(&Value::Float(3.0), &[Value::Int(3)]).is_err());
        assert!(eq(&Value::Int(1), &[]).is_err());
        assert_eq!(compare(&Value::str("a"), &Value::str("b")), Ok(std::cmp::Ordering::Less));
        assert!(compare(&Value::Bool(true), &Value::Bool(false)).is_err());
    }

    #[test]
    fn index_slice_len() {
        let a = v(json!(["x", "y", "z"]));
        assert_eq!(index(&a, &[Value::Int(1)]), Ok(Value::str("y")));
        assert!(index(&a, &[Value::Int(3)]).is_err());
        assert!(index(&a, &[Value::Float(1.0)]).is_err());
        assert_eq!(index(&v(json!({"k": 1})), &[Value::str("nope")]), Ok(Value::Nil));
        assert_eq!(slice(&a, &[Value::Int(1)]).map(|s| length(&s)), Ok(Ok(2)));
        assert_eq!(slice(&Value::str("hello"), &[Value::Int(1), Value::Int(3)]), Ok(Value::str("el")));
        assert!(slice(&a, &[Value::Int(2), Value::Int(1)]).is_err());
        assert!(length(&Value::Float(1.0)).is_err());
    }

    #[test]
    fn escapers() {
        assert_eq!(html_escape("<a href='x'>&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;");
        assert_eq!(js_escape("a'b<\n"), "a\\'b\\u003C\\u000A");
        assert_eq!(query_escape("a b&c/é"), "a+b%26c%2F%C3%A9");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(19_782), "2024-02-29");
        assert_eq!(date_days_ago(0).len(), 10);
        assert!(date_days_ago(1) < date_days_ago(0));
    }

    #[test]
    fn arity_table() {
        assert_eq!(arity("len"), (1, false));
        assert_eq!(arity("print"), (0, true));
        assert!(FuncSet::Ollama.contains("json") && !FuncSet::Builtins.contains("json"));
    }
}
