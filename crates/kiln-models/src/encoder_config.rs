//! Hyper-parameters of an encoder (embedding) model, read from GGUF metadata under
//! llama.cpp's names.

use crate::ModelError;
use kiln_gguf::GgufFile;

/// The encoder architectures Kiln can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncoderArch {
    /// BERT: learned absolute positions, biases, GELU feed-forward (MiniLM, BGE, E5, ...).
    Bert,
    /// Nomic BERT: rotary positions (NeoX), SwiGLU feed-forward, usually no biases.
    NomicBert,
}

impl EncoderArch {
    /// The encoder architecture called `name` in `general.architecture`, if it is one.
    pub fn from_name(name: &str) -> Option<EncoderArch> {
        match name {
            "bert" => Some(EncoderArch::Bert),
            "nomic-bert" => Some(EncoderArch::NomicBert),
            _ => None,
        }
    }
}

/// How a sequence's token states become one vector (`{arch}.pooling_type`, llama.cpp's
/// numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// 1: the mean over all tokens.
    Mean,
    /// 2: the first token's state ([CLS]).
    Cls,
    /// 3: the last token's state.
    Last,
}

impl Pooling {
    fn from_gguf(key: &str, value: Option<u64>) -> Result<Pooling, ModelError> {
        let unsupported = |what: &str| ModelError::BadMetadata {
            key: key.to_string(),
            problem: format!("{what} is not supported (supported: 1 mean, 2 cls, 3 last)"),
        };
        match value {
            Some(1) => Ok(Pooling::Mean),
            Some(2) => Ok(Pooling::Cls),
            Some(3) => Ok(Pooling::Last),
            None | Some(0) => Err(unsupported("no pooling (one vector per token)")),
            Some(4) => Err(unsupported("rank pooling (a reranker)")),
            Some(v) => Err(unsupported(&format!("pooling type {v}"))),
        }
    }
}

/// Shape and numeric constants of an encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    pub arch: EncoderArch,
    pub n_layers: usize,
    /// Width of the hidden states, and of the embeddings the model returns.
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub norm_eps: f32,
    /// Longest input: the trained context (BERT has a position embedding per slot).
    pub context_length: usize,
    pub pooling: Pooling,
    /// RoPE base and rotated dimensions per head (Nomic BERT).
    pub rope_freq_base: f32,
    pub rope_dims: usize,
}

/// Whether `file` holds an encoder Kiln runs through [`crate::Encoder`] rather than a
/// decoder for [`crate::Model`].
pub fn is_encoder(file: &GgufFile) -> bool {
    matches!(file.get_str("general.architecture"), Ok(Some(name)) if EncoderArch::from_name(name).is_some())
}

impl EncoderConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<EncoderConfig, ModelError> {
        let arch_name = file
            .get_str("general.architecture")?
            .ok_or_else(|| ModelError::MissingKey("general.architecture".into()))?;
        let arch =
            EncoderArch::from_name(arch_name).ok_or_else(|| ModelError::UnsupportedArchitecture(arch_name.into()))?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let req = |k: &str| -> Result<usize, ModelError> {
            match file.get_u64(&key(k))? {
                Some(v) if v > 0 && v < (1 << 31) => Ok(v as usize),
                Some(v) => Err(ModelError::BadMetadata { key: key(k), problem: format!("value {v} is out of range") }),
                None => Err(ModelError::MissingKey(key(k))),
            }
        };
        let n_embd = req("embedding_length")?;
        let n_heads = req("attention.head_count")?;
        if n_embd % n_heads != 0 {
            return Err(ModelError::BadMetadata {
                key: key("attention.head_count"),
                problem: format!("{n_heads} heads do not divide the width {n_embd}"),
            });
        }
        let head_dim = n_embd / n_heads;
        let rope_dims = match file.get_u64(&key("rope.dimension_count"))? {
            None => head_dim,
            Some(d) if d > 0 && d as usize <= head_dim && d % 2 == 0 => d as usize,
            Some(d) => {
                return Err(ModelError::BadMetadata {
                    key: key("rope.dimension_count"),
                    problem: format!("{d} rotary dimensions for heads of {head_dim}"),
                })
            }
        };
        let norm_eps = file
            .get_f32(&key("attention.layer_norm_epsilon"))?
            .ok_or_else(|| ModelError::MissingKey(key("attention.layer_norm_epsilon")))?;
        Ok(EncoderConfig {
            arch,
            n_layers: req("block_count")?,
            n_embd,
            n_ff: req("feed_forward_length")?,
            n_heads,
            head_dim,
            norm_eps,
            context_length: req("context_length")?,
            pooling: Pooling::from_gguf(&key("pooling_type"), file.get_u64(&key("pooling_type"))?)?,
            rope_freq_base: file.get_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_dims,
        })
    }
}
