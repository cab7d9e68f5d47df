//! What a GGUF file says about itself (architecture, size, quantization, template, license),
//! read from its metadata without touching the weights: for listings, `/api/show` and the
//! config blob of a new model.

use kiln_gguf::{GgufFile, Value};
use std::collections::HashMap;
use std::path::Path;

/// What the GGUF metadata says about a model, for `/api/tags`, `/api/show` and `/api/ps`.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub architecture: String,
    pub parameter_count: u64,
    pub quantization: String,
    pub template: Option<String>,
    pub license: Option<String>,
    /// Every scalar metadata entry (arrays such as the vocabulary are left out, as Ollama
    /// does without `verbose`).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl ModelInfo {
    /// Ollama's `details` object.
    pub fn details(&self) -> serde_json::Value {
        serde_json::json!({
            "parent_model": "",
            "format": "gguf",
            "family": self.architecture,
            "families": [self.architecture],
            "parameter_size": parameter_size(self.parameter_count),
            "quantization_level": self.quantization,
        })
    }
}

/// "135M", "1.2B": how Ollama writes a parameter count.
pub fn parameter_size(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0}M", n / 1e6)
    } else {
        format!("{:.0}K", n / 1e3)
    }
}

/// llama.cpp's `general.file_type` names.
fn file_type_name(ft: u64) -> Option<&'static str> {
    Some(match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

fn scalar_json(v: &Value) -> Option<serde_json::Value> {
    Some(match v {
        Value::Array(_) => return None,
        Value::String(s) => serde_json::Value::from(s.as_str()),
        Value::Bool(b) => serde_json::Value::from(*b),
        Value::F32(_) | Value::F64(_) => serde_json::Value::from(v.as_f64()?),
        other => match other.as_i64() {
            Some(i) => serde_json::Value::from(i),
            None => serde_json::Value::from(other.as_u64()?),
        },
    })
}

/// Reads a model's description from its metadata (no weights are touched).
pub fn describe(path: &Path) -> Result<ModelInfo, kiln_gguf::GgufError> {
    let file = GgufFile::open(path)?;
    let get_str = |k: &str| file.get_str(k).ok().flatten().map(str::to_string);
    let architecture = get_str("general.architecture").unwrap_or_else(|| "unknown".into());
    let parameter_count: u64 = file.tensors().iter().map(|t| t.n_elements()).sum();
    let quantization = file
        .get_u64("general.file_type")
        .ok()
        .flatten()
        .and_then(file_type_name)
        .map(str::to_string)
        .unwrap_or_else(|| dominant_type(&file));
    let mut metadata = serde_json::Map::new();
    for (k, v) in file.metadata() {
        if let Some(j) = scalar_json(v) {
            metadata.insert(k.clone(), j);
        }
    }
    metadata.insert("general.parameter_count".into(), parameter_count.into());
    Ok(ModelInfo {
        architecture,
        parameter_count,
        quantization,
        template: get_str("tokenizer.chat_template"),
        license: get_str("general.license"),
        metadata,
    })
}

/// The tensor type holding most of the weights, for files without `general.file_type`.
fn dominant_type(file: &GgufFile) -> String {
    let mut bytes: HashMap<&'static str, u64> = HashMap::new();
    for t in file.tensors() {
        *bytes.entry(t.ggml_type.name()).or_default() += t.size;
    }
    bytes.into_iter().max_by_key(|(_, b)| *b).map(|(n, _)| n.to_uppercase()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sizes_read_like_ollama() {
        assert_eq!(parameter_size(134_515_008), "135M");
        assert_eq!(parameter_size(268_098_176), "268M");
        assert_eq!(parameter_size(1_235_814_400), "1.2B");
        assert_eq!(parameter_size(7_000), "7K");
    }

    #[test]
    fn describes_real_models() {
        let (Some(smol), Some(gemma)) =
            (kiln_testdata::model_path(kiln_testdata::SMOLLM2), kiln_testdata::model_path(kiln_testdata::GEMMA3))
        else {
            return;
        };
        let smol = describe(&smol).unwrap();
        assert_eq!((smol.architecture.as_str(), smol.quantization.as_str()), ("llama", "Q4_1"));
        assert_eq!(parameter_size(smol.parameter_count), "135M");
        assert!(smol.template.as_deref().is_some_and(|t| t.contains("<|im_start|>")));
        assert_eq!(smol.metadata["llama.context_length"], 8192);
        let gemma = describe(&gemma).unwrap();
        assert_eq!((gemma.architecture.as_str(), gemma.quantization.as_str()), ("gemma3", "Q4_K_M"));
        assert_eq!(gemma.details()["family"], "gemma3");
    }
}
