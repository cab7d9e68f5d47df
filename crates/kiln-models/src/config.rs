//! Hyper-parameters of a model, read from GGUF metadata (`{arch}.*` keys, llama.cpp's names).

use crate::ModelError;
use kiln_gguf::GgufFile;
use kiln_kernels::YarnRamp;

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
    /// DeepSeek V2/V3: multi-head latent attention, leading dense layers, then a mixture of
    /// experts with optional group-limited routing and shared experts.
    Deepseek2,
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
            "deepseek2" => Ok(Architecture::Deepseek2),
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
            Architecture::Deepseek2 => "deepseek2",
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
    /// YaRN RoPE scaling, when `rope.scaling.type` is `yarn` (`rope_freq_scale` is 1/factor).
    pub rope_yarn: Option<YarnConfig>,
    /// Multi-head latent attention (DeepSeek V2/V3); then `n_kv_heads` is 1 and `head_dim` the
    /// width of the cached latent plus the rotary key.
    pub mla: Option<MlaConfig>,
}

/// YaRN's parameters from the `rope.scaling.*` keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YarnConfig {
    /// Context the model was trained on before scaling (`original_context_length`).
    pub orig_ctx: usize,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// DeepSeek's `mscale_all_dim` (`yarn_log_multiplier`; 0 = none), which also scales the
    /// attention scores.
    pub log_mul: f32,
}

/// Shape of multi-head latent attention.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MlaConfig {
    /// Rank of the query compression (`attn_q_a`, `attn_q_b`); `None` when queries come from
    /// one `attn_q` matrix (DeepSeek V2 Lite).
    pub q_lora_rank: Option<usize>,
    /// Width of the compressed key-value latent, which the cache holds.
    pub kv_lora_rank: usize,
    /// Unrotated dimensions of each query and key head (the rotated ones are `rope_dims`).
    pub qk_nope_head_dim: usize,
    /// Width of each head's value, decompressed from the latent by `attn_v_b`.
    pub v_head_dim: usize,
}

/// How a router turns its logits into expert scores (`expert_gating_func`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertScoring {
    Softmax,
    Sigmoid,
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
    /// architecture: Mixtral and Qwen 3 MoE yes, Qwen 2 MoE no; DeepSeek says it in
    /// `expert_weights_norm`).
    pub normalize_top_k: bool,
    pub scoring: ExpertScoring,
    /// Groups the experts are split into and how many of them a token may choose from
    /// (DeepSeek's group-limited routing; 1 and 1 = no groups).
    pub n_group: usize,
    pub n_group_used: usize,
    /// Multiplies the chosen experts' weights (`expert_weights_scale`; 1.0 = none).
    pub weights_scale: f32,
    /// Whether the shared expert's output is gated per token (Qwen 2 MoE) or added as is (DeepSeek).
    pub shared_gated: bool,
    /// Leading layers with a dense feed-forward block instead (`leading_dense_block_count`).
    pub n_dense_lead: usize,
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
        let rope_dims = opt("rope.dimension_count")?.unwrap_or(head_dim);
        let mla = if arch == Architecture::Deepseek2 {
            Some(mla_config(&opt, arch_name, head_dim, rope_dims)?)
        } else {
            None
        };
        if let (Some(v), None) = (opt("attention.value_length")?, mla) {
            if v != head_dim {
                return Err(ModelError::BadMetadata {
                    key: key("attention.value_length"),
                    problem: format!("value width {v} differs from key width {head_dim}, which is not supported"),
                });
            }
        }
        if rope_dims > head_dim || rope_dims % 2 != 0 {
            return Err(ModelError::BadMetadata {
                key: key("rope.dimension_count"),
                problem: format!("{rope_dims} rotary dimensions for heads of {head_dim}"),
            });
        }
        let scaling_factor = || -> Result<f32, ModelError> {
            let factor = file.get_f32(&key("rope.scaling.factor"))?.unwrap_or(1.0);
            if !(factor > 0.0 && factor.is_finite()) {
                return Err(ModelError::BadMetadata {
                    key: key("rope.scaling.factor"),
                    problem: format!("factor {factor}"),
                });
            }
            Ok(factor)
        };
        let mut rope_yarn = None;
        let rope_freq_scale = match file.get_str(&key("rope.scaling.type"))? {
            None | Some("none") => 1.0,
            Some("linear") => 1.0 / scaling_factor()?,
            Some("yarn") => {
                let log_mul = file.get_f32(&key("rope.scaling.yarn_log_multiplier"))?.unwrap_or(0.0);
                rope_yarn = Some(YarnConfig {
                    orig_ctx: match opt("rope.scaling.original_context_length")? {
                        Some(n) => n,
                        None => opt("context_length")?.unwrap_or(2048),
                    },
                    beta_fast: file.get_f32(&key("rope.scaling.yarn_beta_fast"))?.unwrap_or(32.0),
                    beta_slow: file.get_f32(&key("rope.scaling.yarn_beta_slow"))?.unwrap_or(1.0),
                    // DeepSeek's converter writes 0.1 × mscale_all_dim; llama.cpp divides it out.
                    log_mul: if arch == Architecture::Deepseek2 { log_mul / 0.1 } else { log_mul },
                });
                1.0 / scaling_factor()?
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
            // Mistral's window is in `llama` files Kiln imports (llama.cpp's converter drops it).
            Architecture::Gemma3 | Architecture::Phi3 | Architecture::Llama => {
                opt("attention.sliding_window")?.filter(|&w| w > 0).map(|w| w as u32)
            }
            _ => None,
        };
        let rms_eps = file.get_f32(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);
        // Mixtral is written as `llama` with expert tensors; the Qwen MoE families have their own.
        let has_experts = matches!(arch, Architecture::Qwen2Moe | Architecture::Qwen3Moe)
            || (matches!(arch, Architecture::Llama | Architecture::Deepseek2)
                && opt("expert_count")?.is_some_and(|n| n > 0));
        let moe = if has_experts {
            let n_expert = req("expert_count")?;
            let n_used = req("expert_used_count")?;
            if n_used > n_expert {
                return Err(ModelError::BadMetadata {
                    key: key("expert_used_count"),
                    problem: format!("{n_used} experts per token of {n_expert}"),
                });
            }
            // Mixtral's experts have the model's FFN width; the Qwen families say theirs.
            let n_ff_expert = match opt("expert_feed_forward_length")? {
                Some(n) => n,
                None => req("feed_forward_length")?,
            };
            let deepseek = arch == Architecture::Deepseek2;
            let n_group = opt("expert_group_count")?.unwrap_or(0).max(1);
            let n_group_used = opt("expert_group_used_count")?.unwrap_or(0).max(1);
            if n_expert % n_group != 0 || n_group_used > n_group {
                return Err(ModelError::BadMetadata {
                    key: key("expert_group_count"),
                    problem: format!("{n_expert} experts in {n_group} groups, {n_group_used} of them used"),
                });
            }
            Some(MoeConfig {
                n_expert,
                n_used,
                n_ff_expert,
                // DeepSeek counts its shared experts, each as wide as a routed one.
                n_ff_shared: if deepseek {
                    opt("expert_shared_count")?.filter(|&n| n > 0).map(|n| n * n_ff_expert)
                } else {
                    opt("expert_shared_feed_forward_length")?
                },
                normalize_top_k: if deepseek {
                    file.get_bool(&key("expert_weights_norm"))?.unwrap_or(false)
                } else {
                    arch != Architecture::Qwen2Moe
                },
                scoring: match opt("expert_gating_func")? {
                    // Files from before the key are DeepSeek V2's softmax, as llama.cpp assumes.
                    None | Some(0 | 1) => ExpertScoring::Softmax,
                    Some(2) => ExpertScoring::Sigmoid,
                    Some(other) => {
                        return Err(ModelError::BadMetadata {
                            key: key("expert_gating_func"),
                            problem: format!("expert scoring function {other} is not supported"),
                        })
                    }
                },
                n_group,
                n_group_used,
                weights_scale: match file.get_f32(&key("expert_weights_scale"))? {
                    Some(s) if s != 0.0 => s,
                    _ => 1.0,
                },
                shared_gated: !deepseek,
                n_dense_lead: opt("leading_dense_block_count")?.unwrap_or(0),
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
                Architecture::Phi3 | Architecture::Llama => 0,
                _ => opt("attention.sliding_window_pattern")?.unwrap_or(6),
            },
            vocab_size,
            moe,
            rope_yarn,
            mla,
        })
    }

    /// llama.cpp's attention factor of the context (`yarn_attn_factor`): the model's
    /// `rope.scaling.attn_factor`, for YaRN with its magnitude correction taken out again (RoPE
    /// puts it back) and DeepSeek's `mscale_all_dim` ratio in.
    fn ctx_attn_factor(&self) -> f32 {
        let factor = 1.0 / self.rope_freq_scale;
        let yarn_factor = match self.rope_yarn {
            None => 1.0,
            Some(y) if y.log_mul != 0.0 => {
                // llama.cpp assumes mscale = mscale_all_dim for DeepSeek V2 (its configs have both).
                let mscale = if self.arch == Architecture::Deepseek2 && y.log_mul != 1.0 { y.log_mul } else { 1.0 };
                yarn_mscale(factor, mscale) / yarn_mscale(factor, y.log_mul) / (1.0 + 0.1 * factor.ln())
            }
            Some(_) => yarn_mscale(factor, 1.0) / (1.0 + 0.1 * factor.ln()),
        };
        yarn_factor * self.rope_attn_factor
    }

    /// The multiplier of RoPE's cos and sin: YaRN's `0.1 ln(factor) + 1` (as llama.cpp's
    /// `rope_yarn` applies it) times the context's attention factor.
    pub fn rope_mscale(&self) -> f32 {
        match self.rope_yarn {
            Some(_) => self.ctx_attn_factor() * (1.0 + 0.1 * (1.0 / self.rope_freq_scale).ln()),
            None => self.ctx_attn_factor(),
        }
    }

    /// YaRN's frequency ramp for RoPE base `freq_base`, when the model scales with YaRN.
    pub fn yarn_ramp(&self, freq_base: f32) -> Option<YarnRamp> {
        self.rope_yarn.map(|y| YarnRamp::new(self.rope_dims, y.orig_ctx, freq_base, y.beta_fast, y.beta_slow, 1.0))
    }

    /// The softmax scale of latent attention as llama.cpp's DeepSeek 2 computes it:
    /// `mscale² / √(qk_nope + qk_rope)`, where `mscale` carries YaRN's `mscale_all_dim`
    /// correction (1 without scaling).
    pub fn mla_kq_scale(&self, mla: &MlaConfig) -> f32 {
        let ln_factor = (1.0 / self.rope_freq_scale).ln();
        let log_mul = self.rope_yarn.map_or(0.0, |y| y.log_mul);
        let mscale = self.ctx_attn_factor() * (1.0 + 0.1 * ln_factor) * (1.0 + 0.1 * log_mul * ln_factor);
        mscale * mscale / ((mla.qk_nope_head_dim + self.rope_dims) as f32).sqrt()
    }

    /// Whether layer `il` uses the sliding window (Gemma 3: all but the last of every group).
    pub fn is_sliding(&self, il: usize) -> bool {
        self.sliding_window.is_some() && (self.swa_pattern == 0 || il % self.swa_pattern < self.swa_pattern - 1)
    }
}

/// YaRN's magnitude correction `0.1 · mscale · ln(factor) + 1` (1 when not stretching).
fn yarn_mscale(factor: f32, mscale: f32) -> f32 {
    if factor <= 1.0 {
        1.0
    } else {
        0.1 * mscale * factor.ln() + 1.0
    }
}

/// The latent attention shape of a DeepSeek 2 file, checked against its cache key width
/// (`key_length` = latent + rotary key, as the converter writes it).
fn mla_config(
    opt: &dyn Fn(&str) -> Result<Option<usize>, ModelError>,
    arch: &str,
    head_dim: usize,
    rope_dims: usize,
) -> Result<MlaConfig, ModelError> {
    let need = |k: &str| opt(k)?.ok_or_else(|| ModelError::MissingKey(format!("{arch}.{k}")));
    let kv_lora_rank = need("attention.kv_lora_rank")?;
    // Older conversions lack the split `attn_k_b`/`attn_v_b` tensors and these keys.
    let k_mla = need("attention.key_length_mla")?;
    if head_dim != kv_lora_rank + rope_dims || k_mla <= rope_dims {
        return Err(ModelError::BadMetadata {
            key: format!("{arch}.attention.key_length"),
            problem: format!(
                "key width {head_dim} (MLA: {k_mla}) does not fit a latent of {kv_lora_rank} and {rope_dims} rotary dims"
            ),
        });
    }
    Ok(MlaConfig {
        q_lora_rank: opt("attention.q_lora_rank")?.filter(|&r| r > 0),
        kv_lora_rank,
        qk_nope_head_dim: k_mla - rope_dims,
        v_head_dim: need("attention.value_length_mla")?,
    })
}
