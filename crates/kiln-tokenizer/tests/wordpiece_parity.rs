//! WordPiece (BERT) tokenization against Hugging Face `tokenizers`.
//!
//! `tests/fixtures/minilm-wordpiece.json` holds the ids Hugging Face's tokenizer (the one the
//! model was trained with) gives every item of `tests/corpus/tokenizer.jsonl` and some BERT
//! specific items, with special tokens added (regenerate with
//! `scripts/gen-wordpiece-fixtures.py`). Kiln tokenizes from the GGUF vocabulary llama.cpp's
//! converter writes for the same model.

use std::path::PathBuf;

use kiln_tokenizer::Tokenizer;
use serde_json::Value;

fn fixture() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm-wordpiece.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

#[test]
fn minilm_matches_hugging_face_on_the_corpus() {
    let Some(path) = kiln_testdata::minilm_gguf() else { return };
    let gguf = kiln_gguf::GgufFile::open(&path).expect("model file parses");
    let tok = Tokenizer::from_gguf(&gguf).expect("tokenizer builds");
    let fx = fixture();
    let items = fx["items"].as_array().expect("items");
    assert!(items.len() > 500, "the fixture covers the corpus");
    let mut failures = Vec::new();
    for item in items {
        let text = item["text"].as_str().expect("text");
        let want: Vec<u32> =
            item["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as u32).collect();
        let got = tok.encode(text, true, true);
        if got != want {
            let show =
                |ids: &[u32]| ids.iter().map(|&i| tok.token_text(i).unwrap_or("?")).collect::<Vec<_>>().join(" ");
            failures.push(format!("{text:?}\n  hf:   {}\n  kiln: {}", show(&want), show(&got)));
        }
    }
    assert!(failures.is_empty(), "{} of {} items differ:\n{}", failures.len(), items.len(), failures.join("\n"));
}

#[test]
fn minilm_wraps_input_in_cls_and_sep_and_decodes_words() {
    let Some(path) = kiln_testdata::minilm_gguf() else { return };
    let gguf = kiln_gguf::GgufFile::open(&path).expect("model file parses");
    let tok = Tokenizer::from_gguf(&gguf).expect("tokenizer builds");
    let ids = tok.encode("Hello, World", true, false);
    assert_eq!(ids.first().copied(), tok.token_id("[CLS]"));
    assert_eq!(ids.last().copied(), tok.token_id("[SEP]"));
    assert_eq!(ids.len(), 5, "[CLS] hello , world [SEP]");
    // Word-initial pieces render with their space, the first one too (as llama.cpp's do).
    assert_eq!(tok.decode(&ids, false), " hello, world");
}
