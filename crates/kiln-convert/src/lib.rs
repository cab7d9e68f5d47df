//! kiln-convert: Hugging Face safetensors checkpoints to GGUF, and GGUF to a quantized GGUF.
//!
//! [`convert_dir`] reads a model directory (`config.json`, `*.safetensors`, `tokenizer.json`,
//! `tokenizer_config.json`) and writes the GGUF llama.cpp's `convert_hf_to_gguf.py` writes for
//! it: the same metadata, tensor names, shapes and transforms (q/k rows interleaved for
//! `llama`, experts stacked, DeepSeek's `kv_b_proj` split, rope factor tensors). Without a
//! quantization scheme float weights keep their stored type; with one, each tensor gets the
//! scheme's type. Tensors are read, converted and written one at a time, so memory holds one
//! tensor (as f32) however large the model.
//!
//! [`quantize_gguf`] applies a scheme to a GGUF whose weights are F32, F16 or BF16.

mod arch;
mod config;
mod emit;
mod error;
mod model_card;
mod paths;
mod plan;
mod safetensors;
mod tokenizer;

use std::io::Write;
use std::path::Path;

use kiln_gguf::{GgmlType, GgufFile, TensorInfo};
use kiln_quant::QuantScheme;

pub use error::ConvertError;
pub use paths::join_inside;

use crate::config::HfConfig;
use crate::emit::{dominant_type, write_gguf, InputTensor};
use crate::plan::PlannedTensor;
use crate::safetensors::Checkpoint;

/// Whether `dir` looks like a Hugging Face model directory (a `config.json` beside
/// safetensors weights), as opposed to a directory of something else.
pub fn is_model_dir(dir: &Path) -> bool {
    let has_weights = std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".safetensors") || name == "model.safetensors.index.json"
            })
        })
        .unwrap_or(false);
    has_weights && dir.join("config.json").is_file()
}

/// Whether a file at the top of a model directory is one a conversion may read (weights are
/// listed by [`safetensors::shard_paths`]).
fn is_model_file(name: &str) -> bool {
    name.ends_with(".json")
        || name.ends_with(".jinja")
        || name == "tokenizer.model"
        || name.starts_with("LICENSE")
        || name == "README.md"
}

/// The files of the model directory `dir` a conversion may read, relative to it and sorted:
/// the weights (the shards the index names, else every `*.safetensors`), JSON configs, chat
/// templates, a SentencePiece `tokenizer.model`, the license, the model card (`README.md`, for
/// its license id), and the `config.json` of sentence-transformers modules one
/// directory down (`1_Pooling/config.json`). What a client uploads so that a server can
/// convert the directory.
pub fn model_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, ConvertError> {
    let mut files: Vec<std::path::PathBuf> = safetensors::shard_paths(dir)?
        .into_iter()
        .filter_map(|p| p.strip_prefix(dir).ok().map(Path::to_path_buf))
        .collect();
    for entry in std::fs::read_dir(dir).map_err(ConvertError::io(dir))? {
        let entry = entry.map_err(ConvertError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_file() && is_model_file(&name) {
            files.push(std::path::PathBuf::from(name));
        } else if path.is_dir() && path.join("config.json").is_file() && !name.starts_with('.') {
            files.push(Path::new(&name).join("config.json"));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The status line for a quantization, as Ollama prints it.
fn quantizing_status(from: GgmlType, scheme: QuantScheme) -> String {
    format!("quantizing {from} model to {}", scheme.name().to_ascii_uppercase())
}

struct CheckpointTensor<'a> {
    planned: PlannedTensor,
    stored: GgmlType,
    ckpt: &'a Checkpoint,
}

impl InputTensor for CheckpointTensor<'_> {
    fn name(&self) -> &str {
        &self.planned.name
    }

    fn dims(&self) -> &[u64] {
        &self.planned.dims
    }

    fn stored_type(&self) -> GgmlType {
        self.stored
    }

    fn read_f32(&self) -> Result<Vec<f32>, ConvertError> {
        self.planned.source.read(self.ckpt)
    }

    fn raw(&self) -> Result<&[u8], ConvertError> {
        unreachable!("checkpoint tensors are floats, always re-encoded")
    }
}

/// Converts the model directory `dir` to a GGUF written to `out`, quantized by `scheme` if
/// given. `progress` hears status lines. Returns the bytes written.
pub fn convert_dir(
    dir: &Path,
    out: &mut dyn Write,
    scheme: Option<QuantScheme>,
    progress: &mut dyn FnMut(String),
) -> Result<u64, ConvertError> {
    let config = HfConfig::read(dir)?;
    let ckpt = Checkpoint::open(dir)?;
    let plan = arch::plan(dir, &config, &ckpt)?;
    let arch_name = match plan.metadata.iter().find(|(k, _)| k == "general.architecture") {
        Some((_, v)) => v.as_str().unwrap_or_default().to_string(),
        None => String::new(),
    };
    let mut metadata = vec![
        ("general.architecture".to_string(), kiln_gguf::Value::String(arch_name.clone())),
        ("general.type".to_string(), kiln_gguf::Value::String("model".into())),
    ];
    if let Some(license) = model_card::license(dir) {
        metadata.push(("general.license".to_string(), kiln_gguf::Value::String(license)));
    }
    metadata.extend(plan.metadata);
    metadata.extend(tokenizer::metadata(dir, &config, &arch_name)?);
    let tensors = plan
        .tensors
        .into_iter()
        .map(|planned| {
            let stored = planned.source.stored_type(&ckpt)?;
            Ok(CheckpointTensor { planned, stored, ckpt: &ckpt })
        })
        .collect::<Result<Vec<_>, ConvertError>>()?;
    if let Some(scheme) = scheme {
        progress(quantizing_status(dominant_type(&tensors), scheme));
    }
    write_gguf(out, metadata, &tensors, scheme)
}

struct GgufTensor<'a> {
    info: &'a TensorInfo,
    file: &'a GgufFile,
}

impl InputTensor for GgufTensor<'_> {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn dims(&self) -> &[u64] {
        &self.info.dims
    }

    fn stored_type(&self) -> GgmlType {
        self.info.ggml_type
    }

    fn read_f32(&self) -> Result<Vec<f32>, ConvertError> {
        let mut values = vec![0f32; self.info.n_elements() as usize];
        kiln_quant::dequantize_row(self.info.ggml_type, self.file.tensor_data(self.info), &mut values);
        Ok(values)
    }

    fn raw(&self) -> Result<&[u8], ConvertError> {
        Ok(self.file.tensor_data(self.info))
    }
}

/// Writes the GGUF at `src` quantized by `scheme` to `out`. Its F32, F16 and BF16 tensors are
/// converted; a quantized tensor is copied when the scheme keeps its type, and refused
/// otherwise (quantizing twice compounds the rounding).
pub fn quantize_gguf(
    src: &Path,
    out: &mut dyn Write,
    scheme: QuantScheme,
    progress: &mut dyn FnMut(String),
) -> Result<u64, ConvertError> {
    let gguf_err = |source| ConvertError::Gguf { path: src.to_path_buf(), source };
    let file = GgufFile::open(src).map_err(gguf_err)?;
    let tensors: Vec<GgufTensor> = file.tensors().iter().map(|info| GgufTensor { info, file: &file }).collect();
    progress(quantizing_status(dominant_type(&tensors), scheme));
    write_gguf(out, file.metadata().to_vec(), &tensors, Some(scheme))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_testdata::TempDir;

    #[test]
    fn model_directories_and_the_files_they_upload() {
        let dir = TempDir::new("model-files");
        std::fs::create_dir_all(dir.0.join("1_Pooling")).unwrap();
        std::fs::create_dir_all(dir.0.join(".git")).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json", "LICENSE", "README.md", "pytorch_model.bin"] {
            std::fs::write(dir.0.join(f), b"").unwrap();
        }
        std::fs::write(dir.0.join("1_Pooling/config.json"), b"{}").unwrap();
        std::fs::write(dir.0.join(".git/config.json"), b"").unwrap();
        assert!(is_model_dir(&dir.0));
        let names: Vec<String> = model_files(&dir.0).unwrap().iter().map(|p| p.display().to_string()).collect();
        let want =
            ["1_Pooling/config.json", "LICENSE", "README.md", "config.json", "model.safetensors", "tokenizer.json"];
        assert_eq!(names, want);

        // With an index only the shards it names are weights (Mistral's repositories also carry
        // a `consolidated.safetensors` of the same weights).
        std::fs::write(dir.0.join("consolidated.safetensors"), b"").unwrap();
        std::fs::write(dir.0.join("model.safetensors.index.json"), r#"{"weight_map":{"w":"model.safetensors"}}"#)
            .unwrap();
        let names: Vec<String> = model_files(&dir.0).unwrap().iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "1_Pooling/config.json",
                "LICENSE",
                "README.md",
                "config.json",
                "model.safetensors",
                "model.safetensors.index.json",
                "tokenizer.json"
            ]
        );
        std::fs::remove_file(dir.0.join("model.safetensors")).unwrap();
        std::fs::remove_file(dir.0.join("consolidated.safetensors")).unwrap();
        std::fs::remove_file(dir.0.join("model.safetensors.index.json")).unwrap();
        assert!(!is_model_dir(&dir.0));
    }
}
