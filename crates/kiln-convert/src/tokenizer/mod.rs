//! `tokenizer.json` (with `tokenizer_config.json`) to GGUF tokenizer metadata: byte-level BPE
//! as `gpt2` (tokens, types, merges, a named pre-tokenizer) and WordPiece as `bert`.

mod pre;
mod special;
mod spm;

use std::collections::HashMap;
use std::path::Path;

use kiln_gguf::{Array, Value};
use serde_json::Value as Json;

use crate::config::{read_json_object, HfConfig};
use crate::error::ConvertError;

/// llama.cpp's token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

/// The architectures whose llama.cpp converter prefers a SentencePiece `tokenizer.model` over
/// `tokenizer.json` when the directory has one.
const SENTENCEPIECE_FIRST: [&str; 3] = ["llama", "qwen2", "qwen3"];

/// An added token of `tokenizer.json`.
struct Added {
    content: String,
    special: bool,
}

/// The tokenizer metadata for the model in `dir`.
pub fn metadata(dir: &Path, config: &HfConfig, arch: &str) -> Result<Vec<(String, Value)>, ConvertError> {
    let path = dir.join("tokenizer.json");
    if SENTENCEPIECE_FIRST.contains(&arch) && dir.join("tokenizer.model").is_file() {
        let tokenizer = match path.is_file() {
            true => Json::Object(read_json_object(&path, "")?),
            false => Json::Null,
        };
        return sentencepiece_metadata(dir, config, arch, &tokenizer);
    }
    let tokenizer = Json::Object(read_json_object(&path, "Kiln imports tokenizers from tokenizer.json")?);
    if tokenizer["model"]["byte_fallback"].as_bool() == Some(true) {
        // llama.cpp converts these from `tokenizer.model` as SentencePiece vocabularies.
        return Err(ConvertError::Tokenizer(
            "a byte-fallback tokenizer.json needs its SentencePiece tokenizer.model beside it".into(),
        ));
    }
    let (tokens, types) = vocabulary(&tokenizer, config)?;
    let mut out = Vec::new();
    let model_type = tokenizer["model"]["type"].as_str().unwrap_or("(none)");
    let n_vocab = match model_type {
        "BPE" => {
            out.push(("tokenizer.ggml.model".into(), Value::String("gpt2".into())));
            out.push((
                "tokenizer.ggml.pre".into(),
                Value::String(pre::byte_level_name(&tokenizer["pre_tokenizer"])?.into()),
            ));
            out.push(("tokenizer.ggml.tokens".into(), Value::Array(Array::String(tokens))));
            out.push(("tokenizer.ggml.token_type".into(), Value::Array(Array::I32(types))));
            out.push(("tokenizer.ggml.merges".into(), Value::Array(Array::String(merges(&tokenizer)?))));
            out.extend(space_prefix(dir, arch)?);
            None
        }
        "WordPiece" => {
            let n = tokens.len();
            out.push((
                "tokenizer.ggml.token_type_count".into(),
                Value::U32(config.opt_u32("type_vocab_size")?.unwrap_or(1)),
            ));
            out.push(("tokenizer.ggml.model".into(), Value::String("bert".into())));
            // llama.cpp's WordPiece tokenizer splits on its own and ignores the name; its
            // converter writes the one it detects for BERT's splitting.
            out.push(("tokenizer.ggml.pre".into(), Value::String("jina-v2-en".into())));
            let phantom = tokens.into_iter().zip(&types).map(|(t, &ty)| phantom_space(t, ty)).collect();
            out.push(("tokenizer.ggml.tokens".into(), Value::Array(Array::String(phantom))));
            out.push(("tokenizer.ggml.token_type".into(), Value::Array(Array::I32(types))));
            Some(n)
        }
        other => {
            return Err(ConvertError::Tokenizer(format!("model type {other} is not supported (BPE and WordPiece are)")))
        }
    };
    out.extend(common_metadata(dir, &tokenizer, n_vocab)?);
    Ok(out)
}

/// Special tokens, chat template and normalizer flags, whatever the vocabulary's kind.
fn common_metadata(dir: &Path, tokenizer: &Json, n_vocab: Option<usize>) -> Result<Vec<(String, Value)>, ConvertError> {
    let mut out = special::SpecialTokens::read(dir, tokenizer, n_vocab)?.metadata();
    out.extend(special::chat_template(dir)?);
    out.extend(normalizer_flags(&tokenizer["normalizer"]));
    Ok(out)
}

/// `add_prefix_space` of `tokenizer_config.json`, which llama.cpp's `llama` converter records.
fn space_prefix(dir: &Path, arch: &str) -> Result<Option<(String, Value)>, ConvertError> {
    let tc_path = dir.join("tokenizer_config.json");
    if arch != "llama" || !tc_path.is_file() {
        return Ok(None);
    }
    let add = read_json_object(&tc_path, "")?.get("add_prefix_space").and_then(Json::as_bool);
    Ok(add.map(|p| ("tokenizer.ggml.add_space_prefix".to_string(), Value::Bool(p))))
}

/// A SentencePiece vocabulary as llama.cpp writes it: model `llama`, pre-tokenizer `default`,
/// tokens with scores and types.
fn sentencepiece_metadata(
    dir: &Path,
    config: &HfConfig,
    arch: &str,
    tokenizer: &Json,
) -> Result<Vec<(String, Value)>, ConvertError> {
    let n_vocab = config.opt_u32("vocab_size")?.map(|n| n as usize);
    let spm::Vocabulary { tokens, scores, types } = spm::vocabulary(dir, n_vocab)?;
    let n = tokens.len();
    let mut out = space_prefix(dir, arch)?.into_iter().collect::<Vec<_>>();
    out.push(("tokenizer.ggml.model".into(), Value::String("llama".into())));
    out.push(("tokenizer.ggml.pre".into(), Value::String("default".into())));
    out.push(("tokenizer.ggml.tokens".into(), Value::Array(Array::String(tokens))));
    out.push(("tokenizer.ggml.scores".into(), Value::Array(Array::F32(scores))));
    out.push(("tokenizer.ggml.token_type".into(), Value::Array(Array::I32(types))));
    out.extend(common_metadata(dir, tokenizer, Some(n))?);
    Ok(out)
}

/// Tokens by id, with llama.cpp's types: added tokens are control tokens when special (or
/// when they look it, `<|...|>`), else user-defined; ids without a token are `[PADn]`.
fn vocabulary(tokenizer: &Json, config: &HfConfig) -> Result<(Vec<String>, Vec<i32>), ConvertError> {
    let vocab = tokenizer["model"]["vocab"]
        .as_object()
        .ok_or_else(|| ConvertError::Tokenizer("tokenizer.json has no model.vocab object".into()))?;
    let mut by_id: HashMap<u64, String> = HashMap::with_capacity(vocab.len());
    for (token, id) in vocab {
        let id = id.as_u64().ok_or_else(|| ConvertError::Tokenizer(format!("token {token:?} has id {id}")))?;
        by_id.insert(id, token.clone());
    }
    let mut added: HashMap<u64, Added> = HashMap::new();
    for t in tokenizer["added_tokens"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let (Some(id), Some(content)) = (t["id"].as_u64(), t["content"].as_str()) else {
            return Err(ConvertError::Tokenizer(format!("added token {t} has no id or content")));
        };
        by_id.insert(id, content.to_string());
        added.insert(id, Added { content: content.to_string(), special: t["special"].as_bool().unwrap_or(false) });
    }
    let max_id = by_id.keys().max().copied().unwrap_or(0);
    let n_vocab = match config.opt_u32("vocab_size")? {
        Some(n) => u64::from(n),
        None => by_id.len() as u64,
    };
    if max_id >= n_vocab {
        return Err(ConvertError::Tokenizer(format!("token id {max_id} is beyond the model's vocab_size {n_vocab}")));
    }
    let mut tokens = Vec::with_capacity(n_vocab as usize);
    let mut types = Vec::with_capacity(n_vocab as usize);
    for id in 0..n_vocab {
        let (token, ty) = match (by_id.remove(&id), added.get(&id)) {
            (None, _) => (format!("[PAD{id}]"), UNUSED),
            (Some(t), Some(a)) if a.content == t => {
                if a.special || looks_special(&t) {
                    (t, CONTROL)
                } else {
                    (t.replace('\u{2581}', " "), USER_DEFINED)
                }
            }
            (Some(t), _) => (t, NORMAL),
        };
        tokens.push(token);
        types.push(ty);
    }
    Ok((tokens, types))
}

/// Added tokens some models leave unmarked though they are control tokens (llama.cpp's list).
pub(crate) fn looks_special(token: &str) -> bool {
    matches!(token, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (token.starts_with("<|") && token.ends_with("|>"))
        || (token.starts_with("<｜") && token.ends_with("｜>"))
        || (token.starts_with("<unused") && token.ends_with('>'))
}

/// WordPiece tokens in llama.cpp's form: a word start gets `▁`, a continuation loses `##`.
fn phantom_space(token: String, ty: i32) -> String {
    if ty == CONTROL {
        token
    } else if let Some(rest) = token.strip_prefix("##") {
        rest.to_string()
    } else {
        format!("\u{2581}{token}")
    }
}

/// Merges as `"left right"`; the pair form (transformers 4.45+) may hold spaces, written as
/// `Ġ` (U+0120) as the byte-level alphabet does.
fn merges(tokenizer: &Json) -> Result<Vec<String>, ConvertError> {
    let bad = || ConvertError::Tokenizer("model.merges is neither a list of strings nor of pairs".into());
    let Some(list) = tokenizer["model"]["merges"].as_array() else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|m| match m {
            Json::String(s) => Ok(s.clone()),
            Json::Array(pair) if pair.len() == 2 => {
                let part = |p: &Json| p.as_str().map(|s| s.replace(' ', "\u{120}")).ok_or_else(bad);
                Ok(format!("{} {}", part(&pair[0])?, part(&pair[1])?))
            }
            _ => Err(bad()),
        })
        .collect()
}

/// Lower-casing and accent stripping the normalizer does, as llama.cpp records them.
fn normalizer_flags(normalizer: &Json) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut flag = |key: &str, v: bool| out.push((format!("tokenizer.ggml.normalizer.{key}"), Value::Bool(v)));
    match normalizer["type"].as_str() {
        Some("Lowercase") => flag("lowercase", true),
        Some("StripAccents") => flag("strip_accents", true),
        Some("BertNormalizer") => {
            for key in ["lowercase", "strip_accents"] {
                if let Some(v) = normalizer[key].as_bool() {
                    flag(key, v);
                }
            }
        }
        Some("Sequence") => {
            for n in normalizer["normalizers"].as_array().map(Vec::as_slice).unwrap_or_default() {
                out.extend(normalizer_flags(n));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Json) -> HfConfig {
        HfConfig::from_map(v.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn vocabulary_types_and_padding() {
        let tok = json!({"model": {"vocab": {"a": 0, "b": 1}},
            "added_tokens": [{"id": 2, "content": "<|x|>", "special": false}, {"id": 4, "content": "▁hi", "special": false}]});
        let (tokens, types) = vocabulary(&tok, &config(json!({"vocab_size": 6}))).unwrap();
        assert_eq!(tokens, ["a", "b", "<|x|>", "[PAD3]", " hi", "[PAD5]"]);
        assert_eq!(types, [NORMAL, NORMAL, CONTROL, UNUSED, USER_DEFINED, UNUSED]);
        let err = vocabulary(&tok, &config(json!({"vocab_size": 3}))).unwrap_err().to_string();
        assert!(err.contains("token id 4 is beyond the model's vocab_size 3"), "{err}");
    }

    #[test]
    fn merges_in_both_forms() {
        let pairs = json!({"model": {"merges": [["a", "b"], ["c d", "e"]]}});
        assert_eq!(merges(&pairs).unwrap(), ["a b", "c\u{120}d e"]);
        assert_eq!(merges(&json!({"model": {"merges": ["x y"]}})).unwrap(), ["x y"]);
        assert!(merges(&json!({"model": {"merges": [1]}})).is_err());
    }

    #[test]
    fn wordpiece_tokens_get_phantom_spaces() {
        assert_eq!(phantom_space("##ing".into(), NORMAL), "ing");
        assert_eq!(phantom_space("walk".into(), NORMAL), "\u{2581}walk");
        assert_eq!(phantom_space("[CLS]".into(), CONTROL), "[CLS]");
    }

    #[test]
    fn bert_normalizer_flags() {
        let n = json!({"type": "BertNormalizer", "lowercase": true, "strip_accents": null});
        assert_eq!(normalizer_flags(&n), [("tokenizer.ggml.normalizer.lowercase".to_string(), Value::Bool(true))]);
    }
}
