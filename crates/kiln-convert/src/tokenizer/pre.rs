//! Naming a byte-level BPE pre-tokenizer for `tokenizer.ggml.pre`.
//!
//! llama.cpp's converter names it by hashing the token ids the Python tokenizer gives for a
//! fixed text and looking the hash up in a list of known models; that needs the tokenizer to
//! run. Kiln instead reads what the pre-tokenizer *is* from `tokenizer.json`: the regexes of
//! its `Split` steps and whether its `ByteLevel` step splits too. Each known shape maps to
//! the llama.cpp pre-tokenizer that implements exactly those splits. A shape not listed is an
//! error rather than a guess: the wrong splits would tokenize text silently differently.

use serde_json::Value;

use crate::error::ConvertError;

/// Qwen 2's split (contractions, letters, single digits, punctuation runs, newlines, spaces).
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's: Qwen 2's with digits in runs of up to three.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// DeepSeek V3's three splits: digit runs, CJK runs, then words and punctuation.
const DEEPSEEK_V3_DIGITS: &str = r"\p{N}{1,3}";
const DEEPSEEK_V3_CJK: &str = "[一-龥\u{3040}-ゟ゠-ヿ]+";
const DEEPSEEK_V3_WORDS: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;

/// One step of a `tokenizer.json` pre-tokenizer, as far as naming it needs.
#[derive(Debug, PartialEq)]
enum Step {
    Split(String),
    /// `ByteLevel`; `true` when it also splits with GPT-2's regex.
    ByteLevel(bool),
    /// `Digits` with `individual_digits`.
    Digits(bool),
    Other(String),
}

fn steps(pre: &Value) -> Vec<Step> {
    match pre["type"].as_str() {
        Some("Sequence") => {
            pre["pretokenizers"].as_array().map(|a| a.iter().flat_map(steps).collect()).unwrap_or_default()
        }
        Some("Split") => {
            let regex = pre["pattern"]["Regex"].as_str().or_else(|| pre["pattern"]["String"].as_str());
            vec![Step::Split(regex.unwrap_or_default().to_string())]
        }
        Some("ByteLevel") => vec![Step::ByteLevel(pre["use_regex"].as_bool().unwrap_or(true))],
        Some("Digits") => vec![Step::Digits(pre["individual_digits"].as_bool().unwrap_or(false))],
        other => vec![Step::Other(other.unwrap_or("null").to_string())],
    }
}

/// The llama.cpp pre-tokenizer name for `tokenizer.json`'s `pre_tokenizer`.
pub fn byte_level_name(pre_tokenizer: &Value) -> Result<&'static str, ConvertError> {
    let steps = steps(pre_tokenizer);
    let split = |s: &str| Step::Split(s.to_string());
    let name = match steps.as_slice() {
        [Step::Split(re), Step::ByteLevel(false)] if re == QWEN2_SPLIT => "qwen2",
        [Step::Split(re), Step::ByteLevel(false)] if re == LLAMA3_SPLIT => "llama-bpe",
        [Step::ByteLevel(true)] => "gpt-2",
        [Step::Digits(true), Step::ByteLevel(true)] => "smollm",
        [a, b, c, Step::ByteLevel(false)]
            if *a == split(DEEPSEEK_V3_DIGITS) && *b == split(DEEPSEEK_V3_CJK) && *c == split(DEEPSEEK_V3_WORDS) =>
        {
            "deepseek-v3"
        }
        _ => {
            return Err(ConvertError::Tokenizer(format!(
                "the pre-tokenizer {steps:?} is not one Kiln knows (known: Qwen 2, Llama 3, GPT-2, SmolLM, DeepSeek V3)"
            )))
        }
    };
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split_then_bytes(re: &str) -> Value {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})
    }

    #[test]
    fn known_shapes_get_llama_cpp_names() {
        assert_eq!(byte_level_name(&split_then_bytes(QWEN2_SPLIT)).unwrap(), "qwen2");
        assert_eq!(byte_level_name(&split_then_bytes(LLAMA3_SPLIT)).unwrap(), "llama-bpe");
        assert_eq!(byte_level_name(&json!({"type": "ByteLevel", "add_prefix_space": false})).unwrap(), "gpt-2");
        let smollm = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]});
        assert_eq!(byte_level_name(&smollm).unwrap(), "smollm");
        let deepseek = json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": DEEPSEEK_V3_DIGITS}},
            {"type": "Split", "pattern": {"Regex": DEEPSEEK_V3_CJK}},
            {"type": "Split", "pattern": {"Regex": DEEPSEEK_V3_WORDS}},
            {"type": "ByteLevel", "use_regex": false}]});
        assert_eq!(byte_level_name(&deepseek).unwrap(), "deepseek-v3");
    }

    #[test]
    fn unknown_shapes_are_refused() {
        let err = byte_level_name(&split_then_bytes(r"\p{L}+")).unwrap_err().to_string();
        assert!(err.contains("is not one Kiln knows"), "{err}");
        assert!(byte_level_name(&json!({"type": "Metaspace"})).is_err());
        assert!(byte_level_name(&Value::Null).is_err());
    }
}
