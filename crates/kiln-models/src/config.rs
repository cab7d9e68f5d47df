//! Hyper-parameters of a model, read from GGUF metadata (`{arch}.*` keys, llama.cpp's names).

use crate::ModelError;
use kiln_gguf::GgufFile;

/// The architectures Kiln can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    /// Llama-style with biases on the query, key and value projections and NeoX RoPE.
    Qwen2,
    /// Llama-style with per-head RMS norms of queries and keys and NeoX RoPE.
    Qwen3,
    /// Qwen 2 attention with a mixture of experts plus a gated shared expert.
    Qwen2Moe,
    /// Qwen 3 attention with a mixture of experts (top-k weights renormalised).
    Qwen3Moe,
    /// Llama-style with fused QKV and gate-up projections and NeoX RoPE.
    Phi3,
    Gemma3,
}

impl Architecture {
    fn from_name(name: &str) -> Result<Architecture, ModelError> {
        match name {
            "llama" => Ok(Architecture::Llama),
            "qwen2" => Ok(Architecture::Qwen2),
            "qwen3" => Ok(Architecture::Qwen3),
            "qwen2moe" => Ok(Architecture::Qwen2Moe),
            "qwen3moe" => Ok(Architecture::Qwen3Moe),
            "phi3" => Ok(Architecture::Phi3),
            "gemma3" => Ok(Architecture::Gemma3),
            other => Err(ModelError::UnsupportedArchitecture(other.to_string())),
        }
    }

    /// The prefix of this architecture's metadata keys, as written in GGUF files.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Qwen2Moe => "qwen2moe",
            Architecture::Qwen3Moe => "qwen3moe",
            Architecture::Phi3 => "phi3",
            Architecture::Gemma3 => "gemma3",
        }
    }
}

/// Shape and numeric constants of a decoder-only transformer.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub arch: Architecture,
    pub n_layers: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    /// Width of one attention head (keys, queries and values).
    pub head_dim: usize,
    pub rms_eps: f32,
    pub rope_dims: usize,
    pub rope_freq_base: f32,
    /// Linear RoPE scaling factor from `rope.scaling.factor` (1.0 = none).
    pub rope_freq_scale: f32,
    /// Context the RoPE was trained for before scaling (LongRoPE picks its factors by it).
    pub rope_orig_ctx: Option<usize>,
    /// Multiplier of cos and sin (LongRoPE's attention factor; 1.0 = none).
    pub rope_attn_factor: f32,
    /// RoPE base of sliding-window layers, where it differs (Gemma 3: 10 000).
    pub rope_freq_base_swa: f32,
    /// Context length the model was trained for.
    pub context_length: usize,
    /// Sliding window of the local-attention layers, if the model has them.
    pub sliding_window: Option<u32>,
    /// Every how many layers a global-attention layer comes (Gemma 3: 6, the last of each group).
    pub swa_pattern: usize,
    pub vocab_size: usize,
    /// The mixture of experts, for MoE architectures.
    pub moe: Option<MoeConfig>,
}

/// Shape of a mixture-of-experts feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeConfig {
    pub n_expert: usize,
    /// Experts each token is routed to.
    pub n_used: usize,
    /// Hidden width of one expert.
    pub n_ff_expert: usize,
    /// Hidden width of the shared expert, for models that have one (Qwen 2 MoE).
    pub n_ff_shared: Option<usize>,
    /// Whether the chosen experts' weights are rescaled to sum to one (llama.cpp decides by
    /// architecture: Mixtral and Qwen 3 MoE yes, Qwen 2 MoE no).
    pub normalize_top_k: bool,
}

impl ModelConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<ModelConfig, ModelError> {
        let arch_name = file
            .get_str("general.architecture")?
            .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?;
        let arch = Architecture::from_name(arch_name)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let req = |k: &str| -> Result<usize, ModelError> {
            let full = key(k);
            match file.get_u64(&full)? {
                Some(v) if v > 0 && v < (1 << 31) => Ok(v as usize),
                Some(v) => Err(ModelError::BadMetadata { key: full, problem: format!("value {v} is out of range") }),
                None => Err(ModelError::MissingKey(full)),
            }
        };
        let opt = |k: &str| -> Result<Option<usize>, ModelError> {
            match file.get_u64(&key(k))? {
                Some(v) if v < (1 << 31) => Ok(Some(v as usize)),
                Some(v) => Err(ModelError::BadMetadata { key: key(k), problem: format!("value {v} is out of range") }),
                None => Ok(None),
            }
        };
        let n_embd = req("embedding_length")?;
        let n_heads = req("attention.head_count")?;
        let n_kv_heads = opt("attention.head_count_kv")?.unwrap_or(n_heads);
        if n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(ModelError::BadMetadata {
                key: key("attention.head_count_kv"),
                problem: format!("{n_kv_heads} KV heads do not divide {n_heads} query heads"),
            });
        }
        let head_dim = opt("attention.key_length")?.unwrap_or(n_embd / n_heads);
        if let Some(v) = opt("attention.value_length")? {
            if v != head_dim {
                return Err(ModelError::BadMetadata {
                    key: key("attention.value_length"),
                    problem: format!("value width {v} differs from key width {head_dim}, which is not supported"),
                });
            }
        }
        let rope_dims = opt("rope.dimension_count")?.unwrap_or(head_dim);
        if rope_dims > head_dim || rope_dims % 2 != 0 {
            return Err(ModelError::BadMetadata {
                key: key("rope.dimension_count"),
                problem: format!("{rope_dims} rotary dimensions for heads of {head_dim}"),
            });
        }
        let rope_freq_scale = match file.get_str(&key("rope.scaling.type"))? {
            None | Some("none") => 1.0,
            Some("linear") => {
                let factor = file.get_f32(&key("rope.scaling.factor"))?.unwrap_or(1.0);
                if !(factor > 0.0 && factor.is_finite()) {
                    return Err(ModelError::BadMetadata {
                        key: key("rope.scaling.factor"),
                        problem: format!("factor {factor}"),
                    });
                }
                1.0 / factor
            }
            Some(other) => {
                return Err(ModelError::BadMetadata {
                    key: key("rope.scaling.type"),
                    problem: format!("RoPE scaling '{other}' is not supported yet"),
                })
            }
        };
        let vocab_size = match opt("vocab_size")? {
            Some(v) => v,
            None => file
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.as_array())
                .map(|a| a.len())
                .ok_or_else(|| ModelError::MissingKey("tokenizer.ggml.tokens".into()))?,
        };
        let sliding_window = match arch {
            // Phi 3 (mini, medium) slides every layer's window; 0 marks Phi 4's full attention.
            Architecture::Gemma3 | Architecture::Phi3 => {
                opt("attention.sliding_window")?.filter(|&w| w > 0).map(|w| w as u32)
            }
            _ => None,
        };
        let rms_eps = file.get_f32(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);
        // Mixtral is written as `llama` with expert tensors; the Qwen MoE families have their own.
        let has_experts = matches!(arch, Architecture::Qwen2Moe | Architecture::Qwen3Moe)
            || (arch == Architecture::Llama && opt("expert_count")?.is_some_and(|n| n > 0));
        let moe = if has_experts {
            let n_expert = req("expert_count")?;
            let n_used = req("expert_used_count")?;
            if n_used > n_expert {
                return Err(ModelError::BadMetadata {
                    key: key("expert_used_count"),
                    problem: format!("{n_used} experts per token of {n_expert}"),
                });
            }
            Some(MoeConfig {
                n_expert,
                n_used,
                // Mixtral's experts have the model's FFN width; the Qwen families say theirs.
                n_ff_expert: match opt("expert_feed_forward_length")? {
                    Some(n) => n,
                    None => req("feed_forward_length")?,
                },
                n_ff_shared: opt("expert_shared_feed_forward_length")?,
                normalize_top_k: arch != Architecture::Qwen2Moe,
            })
        } else {
            None
        };
        Ok(ModelConfig {
            arch,
            n_layers: req("block_count")?,
            n_embd,
            // MoE files may describe only their experts' width.
            n_ff: if moe.is_some() { opt("feed_forward_length")?.unwrap_or(0) } else { req("feed_forward_length")? },
            n_heads,
            n_kv_heads,
            head_dim,
            rms_eps,
            rope_dims,
            rope_freq_base: file.get_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_freq_scale,
            rope_freq_base_swa: file.get_f32(&key("rope.freq_base_swa"))?.unwrap_or(10_000.0),
            rope_orig_ctx: opt("rope.scaling.original_context_length")?,
            rope_attn_factor: file.get_f32(&key("rope.scaling.attn_factor"))?.unwrap_or(1.0),
            context_length: opt("context_length")?.unwrap_or(2048),
            sliding_window,
            swa_pattern: match arch {
                Architecture::Phi3 => 0,
                _ => opt("attention.sliding_window_pattern")?.unwrap_or(6),
            },
            vocab_size,
            moe,
        })
    }

    /// Whether layer `il` uses the sliding window (Gemma 3: all but the last of every group).
    pub fn is_sliding(&self, il: usize) -> bool {
        self.sliding_window.is_some() && (self.swa_pattern == 0 || il % self.swa_pattern < self.swa_pattern - 1)
    }
}
