//! Runtime values with Go's reflection distinctions that templates can observe:
//! an invalid value (missing map key) versus a nil interface (JSON null),
//! Go maps versus structs, and types whose `String()` method changes printing.

use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Go's invalid `reflect.Value`: a missing map key; prints `<no value>`.
    Missing,
    /// A nil `interface{}` (JSON null, or a missing key under `missingkey=zero`).
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<List>),
    Map(Rc<Map>),
}

/// How Go would see a composite value beyond its contents.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Meta {
    /// Set for Go structs: unknown fields are errors and the value is always true.
    pub struct_name: Option<&'static str>,
    /// Text of the Go type's `String()` method, used by printing.
    pub display: Option<String>,
    /// Text of `json.Marshal` when it differs from the generic encoding.
    pub json: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct List {
    pub items: Vec<Value>,
    pub meta: Meta,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Map {
    /// Sorted, as Go's printing and `range` visit map keys in sorted order.
    pub entries: BTreeMap<String, Value>,
    pub meta: Meta,
}

impl Value {
    pub fn str(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }

    pub fn list(items: Vec<Value>, meta: Meta) -> Value {
        Value::List(Rc::new(List { items, meta }))
    }

    pub fn map(entries: BTreeMap<String, Value>, meta: Meta) -> Value {
        Value::Map(Rc::new(Map { entries, meta }))
    }

    /// Converts JSON data the way Go's `json.Unmarshal` into `any` does:
    /// every number becomes a float64.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::str(s.as_str()),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from_json).collect(), Meta::default()),
            serde_json::Value::Object(o) => {
                Value::map(o.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect(), Meta::default())
            }
        }
    }

    /// Go's truth: zero values, empty collections and nil are false; structs are true.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Missing | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => m.meta.struct_name.is_some() || !m.entries.is_empty(),
        }
    }

    /// Go's dynamic type name, as `printf` shows it in bad-verb reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Missing | Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(l) => l.meta.struct_name.unwrap_or("[]interface {}"),
            Value::Map(m) => m.meta.struct_name.unwrap_or("map[string]interface {}"),
        }
    }

    /// A nil interface that went through a pipeline stage becomes invalid, as
    /// Go unwraps `interface{}` results after each command.
    pub fn unwrap_interface(self) -> Value {
        match self {
            Value::Nil => Value::Missing,
            v => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_numbers_become_floats() {
        assert_eq!(Value::from_json(&json!(3)), Value::Float(3.0));
        assert_eq!(Value::from_json(&json!(null)), Value::Nil);
    }

    #[test]
    fn truthiness_follows_go() {
        for falsy in [json!(0), json!(""), json!([]), json!({}), json!(false), json!(null)] {
            assert!(!Value::from_json(&falsy).is_true(), "{falsy}");
        }
        for truthy in [json!(0.5), json!(" "), json!([0]), json!({"a": 0}), json!(true)] {
            assert!(Value::from_json(&truthy).is_true(), "{truthy}");
        }
        let empty_struct = Meta { struct_name: Some("S"), ..Meta::default() };
        assert!(Value::map(BTreeMap::new(), empty_struct).is_true());
        assert!(!Value::Missing.is_true());
    }
}
