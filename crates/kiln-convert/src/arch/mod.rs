//! From a Hugging Face architecture to a GGUF one: one module per family, sharing the
//! hyperparameter keys and the checkpoint bookkeeping here.
//!
//! The keys, tensor names and transforms are llama.cpp's (`convert_hf_to_gguf.py`), so the
//! files Kiln writes are the ones llama.cpp's converter writes for the same checkpoint.

mod bert;
mod decoder;
mod deepseek2;
mod llama;
mod phi3;
mod qwen;

use std::collections::BTreeSet;
use std::path::Path;

use kiln_gguf::Value;

use crate::config::HfConfig;
use crate::error::ConvertError;
use crate::plan::{ModelPlan, Source};
use crate::safetensors::Checkpoint;

/// The `architectures` values Kiln imports.
pub const SUPPORTED: &[&str] = &[
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "MixtralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Qwen2MoeForCausalLM",
    "Qwen3MoeForCausalLM",
    "Phi3ForCausalLM",
    "DeepseekV2ForCausalLM",
    "DeepseekV3ForCausalLM",
    "BertModel",
];

/// The metadata and tensors of the model in `dir` (tokenizer metadata aside).
pub fn plan(dir: &Path, config: &HfConfig, ckpt: &Checkpoint) -> Result<ModelPlan, ConvertError> {
    let arch = config.architecture()?;
    let mut m = Mapper::new(ckpt);
    let plan = match arch {
        "LlamaForCausalLM" | "MistralForCausalLM" | "MixtralForCausalLM" => llama::plan(config, &mut m)?,
        "Qwen2ForCausalLM" => qwen::plan("qwen2", config, &mut m)?,
        "Qwen3ForCausalLM" => qwen::plan("qwen3", config, &mut m)?,
        "Qwen2MoeForCausalLM" => qwen::plan("qwen2moe", config, &mut m)?,
        "Qwen3MoeForCausalLM" => qwen::plan("qwen3moe", config, &mut m)?,
        "Phi3ForCausalLM" => phi3::plan(config, &mut m)?,
        "DeepseekV2ForCausalLM" | "DeepseekV3ForCausalLM" => deepseek2::plan(config, &mut m)?,
        "BertModel" => bert::plan(dir, config, &mut m)?,
        other => return Err(ConvertError::UnknownArchitecture(other.to_string())),
    };
    m.finish()?;
    Ok(plan)
}

/// A test for checkpoint tensor names left out of a conversion.
type NameFilter = Box<dyn Fn(&str) -> bool>;

/// Hands out checkpoint tensors to a plan and reports those nobody took: a checkpoint with
/// tensors the architecture does not have is a different model than its config says.
pub(crate) struct Mapper<'a> {
    ckpt: &'a Checkpoint,
    taken: BTreeSet<String>,
    ignored: Vec<NameFilter>,
}

impl<'a> Mapper<'a> {
    fn new(ckpt: &'a Checkpoint) -> Mapper<'a> {
        // Rotary tables some checkpoints save are recomputed at run time.
        Mapper { ckpt, taken: BTreeSet::new(), ignored: vec![Box::new(|n: &str| n.ends_with(".rotary_emb.inv_freq"))] }
    }

    pub fn has(&self, name: &str) -> bool {
        self.ckpt.contains(name)
    }

    pub fn shape(&self, name: &str) -> Result<&'a [u64], ConvertError> {
        self.ckpt.shape(name)
    }

    /// Tensors matching `pred` are left out of the conversion.
    pub fn ignore(&mut self, pred: impl Fn(&str) -> bool + 'static) {
        self.ignored.push(Box::new(pred));
    }

    /// `source` into `plan` as `gguf`, its names marked taken. Missing checkpoint tensors and
    /// inconsistent shapes are errors.
    pub fn add(&mut self, plan: &mut ModelPlan, gguf: impl Into<String>, source: Source) -> Result<(), ConvertError> {
        let dims = source.dims(self.ckpt)?;
        source.stored_type(self.ckpt)?;
        match &source {
            Source::Tensor(n) | Source::RopeInterleaved { name: n, .. } | Source::KvB { name: n, .. } => {
                self.taken.insert(n.clone());
            }
            Source::Stack(names) => self.taken.extend(names.iter().cloned()),
            Source::Values(_) => {}
        }
        plan.push(gguf, dims, source);
        Ok(())
    }

    /// The checkpoint tensor `hf` as `gguf`, checked to have `shape` (PyTorch order).
    pub fn tensor(&mut self, plan: &mut ModelPlan, hf: &str, gguf: &str, shape: &[u64]) -> Result<(), ConvertError> {
        let found = self.ckpt.shape(hf)?;
        if found != shape {
            return Err(ConvertError::ShapeMismatch {
                name: hf.into(),
                expected: shape.to_vec(),
                found: found.to_vec(),
            });
        }
        self.add(plan, gguf, Source::Tensor(hf.into()))
    }

    /// The checkpoint tensor `hf` as `gguf`, any shape.
    pub fn copy(&mut self, plan: &mut ModelPlan, hf: &str, gguf: &str) -> Result<(), ConvertError> {
        self.add(plan, gguf, Source::Tensor(hf.into()))
    }

    /// Like [`Self::copy`] when the checkpoint has `hf`; nothing otherwise.
    pub fn copy_if_present(&mut self, plan: &mut ModelPlan, hf: &str, gguf: &str) -> Result<(), ConvertError> {
        if self.has(hf) {
            self.copy(plan, hf, gguf)?;
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), ConvertError> {
        match self.ckpt.names().find(|n| !self.taken.contains(*n) && !self.ignored.iter().any(|ignore| ignore(n))) {
            Some(n) => Err(ConvertError::UnexpectedTensor(n.to_string())),
            None => Ok(()),
        }
    }
}

/// A u32 metadata value from an optional config key.
pub(crate) fn set_u32(plan: &mut ModelPlan, key: String, value: Option<u32>) {
    if let Some(v) = value {
        plan.set(key, Value::U32(v));
    }
}

/// The first of `keys` the config has, as llama.cpp's `find_hparam` looks them up.
pub(crate) fn first_u32(config: &HfConfig, keys: &[&str]) -> Result<Option<u32>, ConvertError> {
    for k in keys {
        if let Some(v) = config.opt_u32(k)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// The hyperparameters llama.cpp's converter writes for every text model
/// (`TextModel.set_gguf_parameters`), from the config keys it reads.
pub(crate) fn base_metadata(plan: &mut ModelPlan, arch: &str, config: &HfConfig) -> Result<(), ConvertError> {
    let key = |k: &str| format!("{arch}.{k}");
    plan.set("general.architecture", Value::String(arch.into()));
    plan.set(key("block_count"), Value::U32(config.u32("num_hidden_layers")?));
    set_u32(
        plan,
        key("context_length"),
        first_u32(
            config,
            &[
                "max_position_embeddings",
                "n_ctx",
                "n_positions",
                "max_length",
                "max_sequence_length",
                "model_max_length",
            ],
        )?,
    );
    set_u32(plan, key("embedding_length"), first_u32(config, &["hidden_size", "n_embd"])?);
    let n_ff = first_u32(config, &["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size"])?;
    set_u32(plan, key("feed_forward_length"), n_ff);
    set_u32(plan, key("attention.head_count"), first_u32(config, &["num_attention_heads", "n_head"])?);
    set_u32(plan, key("attention.head_count_kv"), first_u32(config, &["num_key_value_heads", "n_kv_heads"])?);
    if config.opt_bool("is_causal") == Some(false) {
        plan.set(key("attention.causal"), Value::Bool(false));
    }
    rope_scaling_metadata(plan, arch, config)?;
    let rope_theta = match config.rope_f64("rope_theta")? {
        Some(t) => Some(t),
        None => config.opt_f64("rope_theta")?,
    };
    if let Some(theta) = rope_theta {
        plan.set(key("rope.freq_base"), Value::F32(theta as f32));
    }
    if let Some(eps) = config.opt_f64("rms_norm_eps")? {
        plan.set(key("attention.layer_norm_rms_epsilon"), Value::F32(eps as f32));
    }
    for k in ["layer_norm_eps", "layer_norm_epsilon"] {
        if let Some(eps) = config.opt_f64(k)? {
            plan.set(key("attention.layer_norm_epsilon"), Value::F32(eps as f32));
            break;
        }
    }
    set_u32(plan, key("expert_count"), first_u32(config, &["num_local_experts", "num_experts", "n_routed_experts"])?);
    set_u32(plan, key("expert_used_count"), first_u32(config, &["num_experts_per_tok", "num_experts_per_token"])?);
    set_u32(plan, key("expert_group_count"), config.opt_u32("n_group")?);
    set_u32(plan, key("expert_group_used_count"), config.opt_u32("topk_group")?);
    if let Some(func) = config.opt_str("scoring_func") {
        let id = match func {
            "softmax" => 1,
            "sigmoid" => 2,
            other => {
                return Err(ConvertError::bad_config("scoring_func", format!("{other:?} is not softmax or sigmoid")))
            }
        };
        plan.set(key("expert_gating_func"), Value::U32(id));
    }
    if let Some(head_dim) = config.opt_u32("head_dim")? {
        plan.set(key("attention.key_length"), Value::U32(head_dim));
        plan.set(key("attention.value_length"), Value::U32(head_dim));
    }
    Ok(())
}

/// `rope_scaling` kinds llama.cpp's converter records as metadata (Llama 3's becomes a tensor
/// instead, LongRoPE's factors too).
fn rope_scaling_metadata(plan: &mut ModelPlan, arch: &str, config: &HfConfig) -> Result<(), ConvertError> {
    let key = |k: &str| format!("{arch}.rope.scaling.{k}");
    let factor = config.rope_f64("factor")?;
    match (config.rope_type(), factor) {
        (Some("linear"), Some(f)) => {
            plan.set(key("type"), Value::String("linear".into()));
            plan.set(key("factor"), Value::F32(f as f32));
        }
        (Some("yarn"), Some(f)) => {
            plan.set(key("type"), Value::String("yarn".into()));
            plan.set(key("factor"), Value::F32(f as f32));
            let orig = config.rope_f64("original_max_position_embeddings")?.ok_or_else(|| {
                ConvertError::MissingConfig { key: "rope_scaling.original_max_position_embeddings".into() }
            })?;
            plan.set(key("original_context_length"), Value::U32(orig as u32));
            for (hf, gguf) in [
                ("extrapolation_factor", "yarn_ext_factor"),
                ("attention_factor", "yarn_attn_factor"),
                ("beta_fast", "yarn_beta_fast"),
                ("beta_slow", "yarn_beta_slow"),
            ] {
                if let Some(v) = config.rope_f64(hf)? {
                    plan.set(key(gguf), Value::F32(v as f32));
                }
            }
        }
        (Some("su" | "longrope"), _) => plan.set(key("type"), Value::String("longrope".into())),
        _ => {}
    }
    Ok(())
}

/// The output projection, or nothing when the embeddings are tied and the checkpoint leaves
/// it out.
pub(crate) fn output_head(
    plan: &mut ModelPlan,
    m: &mut Mapper,
    config: &HfConfig,
    shape: &[u64],
) -> Result<(), ConvertError> {
    if m.has("lm_head.weight") || config.opt_bool("tie_word_embeddings") != Some(true) {
        m.tensor(plan, "lm_head.weight", "output.weight", shape)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: serde_json::Value) -> HfConfig {
        HfConfig::from_map(v.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn rope_scaling_kinds_become_the_converters_keys() {
        let mut plan = ModelPlan::default();
        let c = config(json!({"num_hidden_layers": 1, "rope_theta": 1e6,
            "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}));
        base_metadata(&mut plan, "qwen2", &c).unwrap();
        let get = |k: &str| plan.metadata.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("qwen2.rope.scaling.type"), Some(Value::String("yarn".into())));
        assert_eq!(get("qwen2.rope.scaling.factor"), Some(Value::F32(4.0)));
        assert_eq!(get("qwen2.rope.scaling.original_context_length"), Some(Value::U32(32768)));
        assert_eq!(get("qwen2.rope.freq_base"), Some(Value::F32(1e6)));

        let bad = config(json!({"num_hidden_layers": 1, "scoring_func": "relu"}));
        let err = base_metadata(&mut ModelPlan::default(), "x", &bad).unwrap_err().to_string();
        assert!(err.contains("scoring_func \"relu\" is not softmax or sigmoid"), "{err}");
    }
}
