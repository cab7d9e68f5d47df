//! Reading a [`VocabSpec`] out of GGUF metadata.

use kiln_gguf::GgufFile;

use crate::error::TokenizerError;
use crate::vocab::{SpecialIds, VocabSpec};

fn gguf_err(key: &'static str) -> impl Fn(kiln_gguf::GgufError) -> TokenizerError {
    move |e| TokenizerError::Gguf { key, message: e.to_string() }
}

fn get_str(f: &GgufFile, key: &'static str) -> Result<Option<String>, TokenizerError> {
    Ok(f.get_str(key).map_err(gguf_err(key))?.map(|s| s.to_string()))
}

fn get_u32(f: &GgufFile, key: &'static str) -> Result<Option<u32>, TokenizerError> {
    f.get_u32(key).map_err(gguf_err(key))
}

fn get_bool(f: &GgufFile, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    f.get_bool(key).map_err(gguf_err(key))
}

fn array<'f>(f: &'f GgufFile, key: &'static str) -> Result<Option<&'f kiln_gguf::Array>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v.as_array().map(Some).ok_or(TokenizerError::WrongType { key, expected: "array" }),
    }
}

fn strings(f: &GgufFile, key: &'static str) -> Result<Option<Vec<String>>, TokenizerError> {
    match array(f, key)? {
        None => Ok(None),
        Some(a) => a
            .as_strings()
            .map(|s| Some(s.to_vec()))
            .ok_or(TokenizerError::WrongType { key, expected: "array of strings" }),
    }
}

impl VocabSpec {
    /// Collects the `tokenizer.ggml.*` metadata of a GGUF file (plus `general.name` and
    /// `general.architecture`, which select a few per-model rules).
    pub fn from_gguf(f: &GgufFile) -> Result<VocabSpec, TokenizerError> {
        spec_from_gguf(f)
    }
}

fn spec_from_gguf(f: &GgufFile) -> Result<VocabSpec, TokenizerError> {
    const MODEL: &str = "tokenizer.ggml.model";
    const TOKENS: &str = "tokenizer.ggml.tokens";
    const SCORES: &str = "tokenizer.ggml.scores";
    const TYPES: &str = "tokenizer.ggml.token_type";
    const MERGES: &str = "tokenizer.ggml.merges";

    let model = get_str(f, MODEL)?.ok_or(TokenizerError::MissingKey(MODEL))?;
    let tokens = strings(f, TOKENS)?.ok_or(TokenizerError::MissingKey(TOKENS))?;
    let scores = match array(f, SCORES)? {
        None => None,
        Some(a) => Some(match (a.as_f32s(), a.as_i32s()) {
            (Some(s), _) => s.to_vec(),
            (None, Some(s)) => s.iter().map(|&v| v as f32).collect(),
            _ => return Err(TokenizerError::WrongType { key: SCORES, expected: "array of f32 or i32" }),
        }),
    };
    let token_types = match array(f, TYPES)? {
        None => None,
        Some(a) => {
            Some(a.as_i32s().ok_or(TokenizerError::WrongType { key: TYPES, expected: "array of i32" })?.to_vec())
        }
    };
    let merges = strings(f, MERGES)?;

    let id = |key: &'static str| get_u32(f, key);
    let mut special = SpecialIds {
        bos: id("tokenizer.ggml.bos_token_id")?,
        eos: id("tokenizer.ggml.eos_token_id")?,
        eot: id("tokenizer.ggml.eot_token_id")?,
        eom: id("tokenizer.ggml.eom_token_id")?,
        unk: id("tokenizer.ggml.unknown_token_id")?,
        // The key is spelled this way in GGUF.
        sep: id("tokenizer.ggml.seperator_token_id")?,
        pad: id("tokenizer.ggml.padding_token_id")?,
        mask: id("tokenizer.ggml.mask_token_id")?,
        fim_pre: id("tokenizer.ggml.fim_pre_token_id")?,
        fim_suf: id("tokenizer.ggml.fim_suf_token_id")?,
        fim_mid: id("tokenizer.ggml.fim_mid_token_id")?,
        fim_pad: id("tokenizer.ggml.fim_pad_token_id")?,
        fim_rep: id("tokenizer.ggml.fim_rep_token_id")?,
        fim_sep: id("tokenizer.ggml.fim_sep_token_id")?,
    };
    // Older files name the fill-in-the-middle tokens differently; those keys take precedence.
    for (slot, key) in [
        (&mut special.fim_pre, "tokenizer.ggml.prefix_token_id"),
        (&mut special.fim_suf, "tokenizer.ggml.suffix_token_id"),
        (&mut special.fim_mid, "tokenizer.ggml.middle_token_id"),
    ] {
        if let Some(v) = id(key)? {
            *slot = Some(v);
        }
    }

    Ok(VocabSpec {
        model,
        pre: get_str(f, "tokenizer.ggml.pre")?,
        tokens,
        scores,
        token_types,
        merges,
        special,
        add_bos: get_bool(f, "tokenizer.ggml.add_bos_token")?,
        add_eos: get_bool(f, "tokenizer.ggml.add_eos_token")?,
        add_space_prefix: get_bool(f, "tokenizer.ggml.add_space_prefix")?,
        name: get_str(f, "general.name")?,
        architecture: get_str(f, "general.architecture")?,
        lowercase: get_bool(f, "tokenizer.ggml.normalizer.lowercase")?,
        strip_accents: get_bool(f, "tokenizer.ggml.normalizer.strip_accents")?,
    })
}
