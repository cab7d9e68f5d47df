//! `config.json`: typed lookups with messages that name the key.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::ConvertError;

/// Reads a JSON object file, `MissingFile` with `why` when absent.
pub fn read_json_object(path: &Path, why: &'static str) -> Result<Map<String, Value>, ConvertError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConvertError::MissingFile { path: path.to_path_buf(), why })
        }
        Err(e) => return Err(ConvertError::Io { path: path.to_path_buf(), source: e }),
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ConvertError::Json { path: path.to_path_buf(), message: "expected an object".into() }),
        Err(e) => Err(ConvertError::Json { path: path.to_path_buf(), message: e.to_string() }),
    }
}

/// A model's `config.json`.
#[derive(Debug, Clone)]
pub struct HfConfig {
    map: Map<String, Value>,
}

impl HfConfig {
    pub fn read(dir: &Path) -> Result<HfConfig, ConvertError> {
        Self::from_map(read_json_object(&dir.join("config.json"), "a Hugging Face model directory needs it")?)
    }

    pub fn from_map(map: Map<String, Value>) -> Result<HfConfig, ConvertError> {
        Ok(HfConfig { map })
    }

    /// The first entry of `architectures`.
    pub fn architecture(&self) -> Result<&str, ConvertError> {
        self.map
            .get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .ok_or_else(|| ConvertError::MissingConfig { key: "architectures".into() })
    }

    /// The value of `key` unless absent or null.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A non-negative integer, if present.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| ConvertError::bad_config(key, format!("is {v}, expected a non-negative integer"))),
        }
    }

    pub fn u32(&self, key: &str) -> Result<u32, ConvertError> {
        self.opt_u32(key)?.ok_or_else(|| ConvertError::MissingConfig { key: key.into() })
    }

    /// A number, if present (integers accepted).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, ConvertError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                v.as_f64().map(Some).ok_or_else(|| ConvertError::bad_config(key, format!("is {v}, expected a number")))
            }
        }
    }

    pub fn f64(&self, key: &str) -> Result<f64, ConvertError> {
        self.opt_f64(key)?.ok_or_else(|| ConvertError::MissingConfig { key: key.into() })
    }

    /// A bool, if present.
    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// A string, if present.
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// `rope_scaling` (or its newer name `rope_parameters`), if an object.
    pub fn rope_scaling(&self) -> Option<&Map<String, Value>> {
        self.get("rope_parameters").or_else(|| self.get("rope_scaling")).and_then(Value::as_object)
    }

    /// The rope scaling kind (`rope_type`, or the older `type`).
    pub fn rope_type(&self) -> Option<&str> {
        let rope = self.rope_scaling()?;
        rope.get("rope_type").or_else(|| rope.get("type")).and_then(Value::as_str)
    }

    /// A number inside `rope_scaling`.
    pub fn rope_f64(&self, key: &str) -> Result<Option<f64>, ConvertError> {
        match self.rope_scaling().and_then(|r| r.get(key)).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                ConvertError::bad_config(&format!("rope_scaling.{key}"), format!("is {v}, expected a number"))
            }),
        }
    }

    /// A list of numbers inside `rope_scaling`.
    pub fn rope_list(&self, key: &str) -> Result<Option<Vec<f64>>, ConvertError> {
        let Some(v) = self.rope_scaling().and_then(|r| r.get(key)).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let bad = || ConvertError::bad_config(&format!("rope_scaling.{key}"), "is not a list of numbers");
        v.as_array().ok_or_else(bad)?.iter().map(|x| x.as_f64().ok_or_else(bad)).collect::<Result<_, _>>().map(Some)
    }

    /// The per-head dimension: `head_dim`, else `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> Result<u32, ConvertError> {
        match self.opt_u32("head_dim")? {
            Some(d) => Ok(d),
            None => {
                let heads = self.u32("num_attention_heads")?;
                if heads == 0 {
                    return Err(ConvertError::bad_config("num_attention_heads", "is 0"));
                }
                Ok(self.u32("hidden_size")? / heads)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> HfConfig {
        HfConfig::from_map(v.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn lookups_name_the_key_at_fault() {
        let c = config(json!({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
            "rms_norm_eps": 1e-5, "bad": "x", "gone": null, "rope_scaling": {"type": "linear", "factor": 2}}));
        assert_eq!(c.architecture().unwrap(), "LlamaForCausalLM");
        assert_eq!(c.head_dim().unwrap(), 16);
        assert_eq!(c.f64("rms_norm_eps").unwrap(), 1e-5);
        assert_eq!(c.opt_u32("gone").unwrap(), None);
        assert_eq!(c.rope_type(), Some("linear"));
        assert_eq!(c.rope_f64("factor").unwrap(), Some(2.0));
        assert_eq!(c.u32("num_hidden_layers").unwrap_err().to_string(), "config.json: num_hidden_layers is missing");
        assert!(c.u32("bad").unwrap_err().to_string().contains("bad is \"x\", expected a non-negative integer"));
        assert!(config(json!({})).architecture().unwrap_err().to_string().contains("architectures is missing"));
    }
}
