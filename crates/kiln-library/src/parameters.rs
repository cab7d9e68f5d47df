//! Modelfile PARAMETERs: the names Ollama knows and the JSON type each is stored as in the
//! params layer (`{"temperature":0.2,"stop":["<|im_end|>"]}`).

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Bool,
    /// Repeats; stored as a list of strings.
    Strings,
}

fn kind(name: &str) -> Option<Kind> {
    Some(match name {
        "num_ctx" | "num_predict" | "top_k" | "seed" | "repeat_last_n" | "num_keep" | "num_batch" | "num_gpu"
        | "main_gpu" | "num_thread" | "mirostat" => Kind::Int,
        "temperature" | "top_p" | "min_p" | "typical_p" | "repeat_penalty" | "presence_penalty"
        | "frequency_penalty" | "mirostat_tau" | "mirostat_eta" => Kind::Float,
        "use_mmap" | "numa" | "low_vram" | "penalize_newline" => Kind::Bool,
        "stop" => Kind::Strings,
        _ => return None,
    })
}

/// Converts `PARAMETER name value` pairs into the params object, checking names and types.
pub fn from_pairs(pairs: &[(String, String)]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, text) in pairs {
        let k = kind(name).ok_or_else(|| format!("unknown parameter '{name}'"))?;
        let bad = |what: &str| format!("invalid value for parameter '{name}': {text:?} is not {what}");
        let value = match k {
            Kind::Int => Value::from(text.trim().parse::<i64>().map_err(|_| bad("an integer"))?),
            Kind::Float => {
                let f = text.trim().parse::<f64>().map_err(|_| bad("a number"))?;
                serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| bad("a finite number"))?
            }
            Kind::Bool => Value::from(text.trim().parse::<bool>().map_err(|_| bad("true or false"))?),
            Kind::Strings => {
                let list = out.entry(name.clone()).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(v) = list {
                    v.push(Value::from(text.as_str()));
                }
                continue;
            }
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// Checks a params object sent over the API (`/api/create`'s `parameters`): known names,
/// right types; a single `stop` string becomes a list.
pub fn check_object(params: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, v) in params {
        let k = kind(name).ok_or_else(|| format!("unknown parameter '{name}'"))?;
        let ok = match (k, v) {
            (Kind::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Kind::Float, Value::Number(_)) | (Kind::Bool, Value::Bool(_)) => true,
            (Kind::Strings, Value::String(s)) => {
                out.insert(name.clone(), Value::Array(vec![Value::from(s.as_str())]));
                continue;
            }
            (Kind::Strings, Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !ok {
            return Err(format!("invalid value for parameter '{name}': {v}"));
        }
        out.insert(name.clone(), v.clone());
    }
    Ok(out)
}

/// The params object as `PARAMETER` pairs, lists repeated.
pub fn to_pairs(params: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, v) in params {
        let values = match v {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for v in values {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.push((name.clone(), text));
        }
    }
    out
}

/// The params object as `/api/show` writes it: one `name value` line per value, strings
/// quoted (Continue reads `num_ctx` and `stop` from these lines).
pub fn to_lines(params: &Map<String, Value>) -> String {
    let quoted = |name: &str, text: String| match params.get(name) {
        Some(Value::Array(_)) | Some(Value::String(_)) => format!("{text:?}"),
        _ => text,
    };
    let lines: Vec<String> =
        to_pairs(params).into_iter().map(|(name, text)| format!("{name:<30} {}", quoted(&name, text))).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn pairs_become_typed_values() {
        let m = from_pairs(&pairs(&[
            ("temperature", "0.25"),
            ("num_ctx", "2048"),
            ("stop", "<|im_end|>"),
            ("stop", "User:"),
            ("use_mmap", "false"),
        ]))
        .unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"temperature":0.25,"num_ctx":2048,"stop":["<|im_end|>","User:"],"use_mmap":false})
        );
    }

    #[test]
    fn unknown_names_and_bad_values_are_refused() {
        assert!(from_pairs(&pairs(&[("temprature", "1")])).unwrap_err().contains("unknown parameter 'temprature'"));
        assert!(from_pairs(&pairs(&[("num_ctx", "big")])).unwrap_err().contains("not an integer"));
        assert!(from_pairs(&pairs(&[("top_p", "NaN")])).unwrap_err().contains("finite"));
        assert!(from_pairs(&pairs(&[("use_mmap", "yes")])).is_err());
    }

    #[test]
    fn api_objects_are_checked() {
        let ok = json!({"stop":"x","num_predict":5,"temperature":1});
        let m = check_object(ok.as_object().unwrap()).unwrap();
        assert_eq!(Value::Object(m), json!({"stop":["x"],"num_predict":5,"temperature":1}));
        for bad in [json!({"num_ctx":"4096"}), json!({"num_ctx":1.5}), json!({"stop":[1]}), json!({"nope":1})] {
            assert!(check_object(bad.as_object().unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn pairs_round_trip() {
        let p = pairs(&[("stop", "a"), ("stop", "b"), ("temperature", "0.5")]);
        assert_eq!(to_pairs(&from_pairs(&p).unwrap()), p);
    }

    #[test]
    fn lines_read_like_ollamas() {
        let m = json!({"num_ctx":4096,"stop":["<|im_end|>","a\"b"]});
        let text = to_lines(m.as_object().unwrap());
        let want = format!("{:<30} 4096\n{:<30} \"<|im_end|>\"\n{:<30} \"a\\\"b\"", "num_ctx", "stop", "stop");
        assert_eq!(text, want);
    }
}
