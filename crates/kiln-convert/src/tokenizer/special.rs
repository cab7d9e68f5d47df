//! Special tokens, whether to add BOS/EOS/SEP, and the chat template: the metadata llama.cpp's
//! `SpecialVocab` reads from `tokenizer.json`, `tokenizer_config.json` and `config.json`.

use std::path::Path;

use kiln_gguf::{Array, Value};
use serde_json::{Map, Value as Json};

use crate::config::read_json_object;
use crate::error::ConvertError;

/// The token kinds that get an id key, with their GGUF key (llama.cpp has no CLS key: BERT's
/// CLS is its BOS).
const ID_KEYS: [(&str, Option<&str>); 7] = [
    ("bos", Some("tokenizer.ggml.bos_token_id")),
    ("eos", Some("tokenizer.ggml.eos_token_id")),
    ("unk", Some("tokenizer.ggml.unknown_token_id")),
    ("sep", Some("tokenizer.ggml.seperator_token_id")),
    ("pad", Some("tokenizer.ggml.padding_token_id")),
    ("cls", None),
    ("mask", Some("tokenizer.ggml.mask_token_id")),
];

/// What the tokenizer files say about special tokens.
pub(crate) struct SpecialTokens {
    /// (kind, id), first setting wins.
    ids: Vec<(&'static str, u32)>,
    /// (kind, add it?), for bos, eos, sep.
    add: Vec<(&'static str, bool)>,
}

fn read_optional(path: &Path) -> Result<Option<Map<String, Json>>, ConvertError> {
    if path.is_file() {
        read_json_object(path, "").map(Some)
    } else {
        Ok(None)
    }
}

/// A token's text as the config gives it: a string or `{"content": ...}`.
fn token_text(entry: &Json) -> Option<&str> {
    entry.as_str().or_else(|| entry["content"].as_str())
}

impl SpecialTokens {
    fn set_id(&mut self, kind: &'static str, id: Option<u64>, n_vocab: Option<usize>) {
        let Some(id) = id.and_then(|i| u32::try_from(i).ok()) else { return };
        if n_vocab.is_some_and(|n| id as usize >= n) || self.ids.iter().any(|(k, _)| *k == kind) {
            return;
        }
        self.ids.push((kind, id));
    }

    fn set_add(&mut self, kind: &'static str, value: bool, overwrite: bool) {
        match self.add.iter_mut().find(|(k, _)| *k == kind) {
            Some(entry) if overwrite => entry.1 = value,
            Some(_) => {}
            None => self.add.push((kind, value)),
        }
    }

    /// Reads the model directory's tokenizer files. `n_vocab`, when given, drops ids beyond
    /// the vocabulary.
    pub fn read(dir: &Path, tokenizer: &Json, n_vocab: Option<usize>) -> Result<SpecialTokens, ConvertError> {
        let mut tc = read_optional(&dir.join("tokenizer_config.json"))?;
        // `special_tokens_map.json` fills in what `tokenizer_config.json` leaves out, as
        // transformers does when it loads a tokenizer.
        if let (Some(tc), Some(map)) = (tc.as_mut(), read_optional(&dir.join("special_tokens_map.json"))?) {
            for (kind, _) in ID_KEYS {
                let key = format!("{kind}_token");
                if let Some(v) = map.get(&key).filter(|_| tc.get(&key).is_none_or(Json::is_null)) {
                    tc.insert(key, v.clone());
                }
            }
        }
        let mut s = SpecialTokens { ids: Vec::new(), add: Vec::new() };
        if let Some(tc) = tc.as_mut() {
            for (missing, from) in [("bos_token", "cls_token"), ("eos_token", "sep_token")] {
                if tc.get(missing).and_then(token_text).is_none() {
                    if let Some(v) = tc.get(from).filter(|v| token_text(v).is_some()).cloned() {
                        tc.insert(missing.into(), v);
                    }
                }
            }
            s.read_post_processor(&tokenizer["post_processor"], tc);
            let added = tokenizer["added_tokens"].as_array().map(Vec::as_slice).unwrap_or_default();
            for (kind, _) in ID_KEYS {
                if let Some(add) = tc.get(&format!("add_{kind}_token")).and_then(Json::as_bool) {
                    if matches!(kind, "bos" | "eos" | "sep") {
                        s.set_add(kind, add, false);
                    }
                }
                let Some(text) = tc.get(&format!("{kind}_token")).and_then(token_text) else { continue };
                let id = added.iter().find(|t| t["content"].as_str() == Some(text)).and_then(|t| t["id"].as_u64());
                s.set_id(kind, id, n_vocab);
            }
        }
        if let Some(config) = read_optional(&dir.join("config.json"))? {
            for (kind, _) in ID_KEYS {
                s.set_id(kind, config.get(&format!("{kind}_token_id")).and_then(Json::as_u64), n_vocab);
            }
        }
        Ok(s)
    }

    /// What the post-processor implies about added tokens: byte-level adds none; a template
    /// `[X] $A [Y]` adds X as BOS (or CLS) and Y as EOS, and a separator between pairs only
    /// when the single template does not already end in one (llama.cpp's reading).
    fn read_post_processor(&mut self, post: &Json, tc: &mut Map<String, Json>) {
        let processors = match post["processors"].as_array() {
            Some(list) => list.clone(),
            None if post.is_object() => vec![post.clone()],
            None => return,
        };
        let text = |tc: &Map<String, Json>, k: &str| tc.get(k).and_then(token_text).map(str::to_string);
        for p in processors {
            match p["type"].as_str() {
                Some("ByteLevel") => {
                    self.set_add("bos", false, false);
                    self.set_add("eos", false, false);
                }
                Some("RobertaProcessing") => {
                    for kind in ["bos", "eos", "sep"] {
                        self.set_add(kind, true, true);
                    }
                }
                Some("TemplateProcessing") => {
                    let single = p["single"].as_array().cloned().unwrap_or_default();
                    if single.len() < 2 {
                        continue;
                    }
                    let special = |item: &Json| item["SpecialToken"]["id"].as_str().map(str::to_string);
                    let first = single.first().and_then(special);
                    let last = single.last().and_then(special);
                    if let Some(first) = &first {
                        let known = [text(tc, "bos_token"), text(tc, "cls_token")].contains(&Some(first.clone()));
                        self.set_add("bos", known, true);
                    }
                    if let Some(last) = &last {
                        // A template ending in another token than the EOS makes that the EOS.
                        tc.insert("eos_token".into(), Json::String(last.clone()));
                        self.set_add("eos", true, true);
                    }
                    let mut pair = p["pair"].as_array().cloned().unwrap_or_default();
                    if first.is_some() && pair.first().and_then(special) == first {
                        pair.remove(0);
                    }
                    if last.is_some() && pair.last().and_then(special) == last {
                        pair.pop();
                    }
                    let sequence =
                        |item: Option<&Json>| item.and_then(|i| i["Sequence"]["id"].as_str().map(str::to_string));
                    if pair.len() > 2
                        && sequence(pair.first()).as_deref() == Some("A")
                        && sequence(pair.last()).as_deref() == Some("B")
                    {
                        let separators = [text(tc, "sep_token"), text(tc, "eos_token")];
                        let is_separator = |item: &Json| special(item).is_some_and(|s| separators.contains(&Some(s)));
                        let inner = &pair[1..pair.len() - 1];
                        let add_sep = (is_separator(&inner[0]) && last.is_none())
                            || (inner.len() == 2 && is_separator(&inner[1]));
                        self.set_add("sep", add_sep, true);
                    }
                }
                _ => {}
            }
        }
    }

    /// The metadata entries: token ids, then the add flags.
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (kind, id) in &self.ids {
            if let Some((_, Some(key))) = ID_KEYS.iter().find(|(k, _)| k == kind) {
                out.push((key.to_string(), Value::U32(*id)));
            }
        }
        for (kind, add) in &self.add {
            out.push((format!("tokenizer.ggml.add_{kind}_token"), Value::Bool(*add)));
        }
        out
    }
}

/// `tokenizer.chat_template` (and named templates) from `tokenizer_config.json`, else from
/// `chat_template.jinja` or `chat_template.json`.
pub(crate) fn chat_template(dir: &Path) -> Result<Vec<(String, Value)>, ConvertError> {
    let from_config =
        read_optional(&dir.join("tokenizer_config.json"))?.and_then(|tc| tc.get("chat_template").cloned());
    let template = match from_config.filter(|t| !t.is_null()) {
        Some(t) => t,
        None => {
            let jinja = dir.join("chat_template.jinja");
            if jinja.is_file() {
                Json::String(std::fs::read_to_string(&jinja).map_err(ConvertError::io(&jinja))?)
            } else {
                match read_optional(&dir.join("chat_template.json"))? {
                    Some(t) => t.get("chat_template").cloned().unwrap_or(Json::Null),
                    None => Json::Null,
                }
            }
        }
    };
    let mut out = Vec::new();
    match template {
        Json::String(t) => out.push(("tokenizer.chat_template".to_string(), Value::String(t))),
        Json::Array(choices) => {
            let mut names = Vec::new();
            let mut default = None;
            for choice in &choices {
                let name: String = choice["name"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                let Some(template) = choice["template"].as_str() else { continue };
                if name == "default" {
                    default = Some(template.to_string());
                } else if !name.is_empty() {
                    out.push((format!("tokenizer.chat_template.{name}"), Value::String(template.to_string())));
                    names.push(name);
                }
            }
            if !names.is_empty() {
                out.push(("tokenizer.chat_templates".to_string(), Value::Array(Array::String(names))));
            }
            if let Some(t) = default {
                out.push(("tokenizer.chat_template".to_string(), Value::String(t)));
            }
        }
        _ => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_testdata::TempDir;
    use serde_json::json;

    fn dir_with(files: &[(&str, Json)]) -> TempDir {
        let dir = TempDir::new("special-tokens");
        std::fs::create_dir_all(&dir.0).unwrap();
        for (name, v) in files {
            std::fs::write(dir.0.join(name), v.to_string()).unwrap();
        }
        dir
    }

    #[test]
    fn ids_come_from_config_text_then_config_json() {
        let tokenizer = json!({"added_tokens": [{"id": 0, "content": "<pad>"}, {"id": 5, "content": "<s>"}],
            "post_processor": {"type": "ByteLevel"}});
        let dir = dir_with(&[
            ("tokenizer_config.json", json!({"bos_token": {"content": "<s>"}, "add_bos_token": true})),
            ("special_tokens_map.json", json!({"pad_token": "<pad>"})),
            ("config.json", json!({"bos_token_id": 9, "eos_token_id": 7})),
        ]);
        let meta = SpecialTokens::read(&dir.0, &tokenizer, None).unwrap().metadata();
        let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("tokenizer.ggml.bos_token_id"), Some(Value::U32(5)));
        assert_eq!(get("tokenizer.ggml.padding_token_id"), Some(Value::U32(0)));
        assert_eq!(get("tokenizer.ggml.eos_token_id"), Some(Value::U32(7)));
        // The byte-level post-processor adds nothing; it wins over the config's flag.
        assert_eq!(get("tokenizer.ggml.add_bos_token"), Some(Value::Bool(false)));
        assert_eq!(get("tokenizer.ggml.add_eos_token"), Some(Value::Bool(false)));
    }

    #[test]
    fn chat_templates_named_or_plain() {
        let named =
            json!({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool use", "template": "T"}]});
        let dir = dir_with(&[("tokenizer_config.json", named)]);
        let meta = chat_template(&dir.0).unwrap();
        assert_eq!(
            meta,
            [
                ("tokenizer.chat_template.tool_use".to_string(), Value::String("T".into())),
                ("tokenizer.chat_templates".to_string(), Value::Array(Array::String(vec!["tool_use".into()]))),
                ("tokenizer.chat_template".to_string(), Value::String("D".into())),
            ]
        );
        let dir = dir_with(&[("tokenizer_config.json", json!({}))]);
        std::fs::write(dir.0.join("chat_template.jinja"), "J").unwrap();
        assert_eq!(
            chat_template(&dir.0).unwrap(),
            [("tokenizer.chat_template".to_string(), Value::String("J".into()))]
        );
    }
}
