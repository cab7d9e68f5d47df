//! Token-for-token comparison with llama.cpp on real model vocabularies.
//!
//! The fixtures in `tests/fixtures/` hold llama.cpp's output for every item of
//! `tests/corpus/tokenizer.jsonl` (regenerate them with `scripts/gen-tokenizer-fixtures.py`).
//! The models come from `$KILN_TEST_MODELS` (default `~/.cache/kiln/models`); fetch them with
//! `scripts/fetch-models.sh`, or set `KILN_SKIP_MODEL_TESTS=1` to skip these tests.

use std::path::PathBuf;

use kiln_tokenizer::Tokenizer;
use serde_json::Value;

use kiln_testdata::{GEMMA3, SMOLLM2};

/// Loads the model's tokenizer, or `None` when model tests are skipped.
fn load(file: &str) -> Option<Tokenizer> {
    let path = kiln_testdata::model_path(file)?;
    let gguf = kiln_gguf::GgufFile::open(&path).expect("model file parses");
    Some(Tokenizer::from_gguf(&gguf).expect("tokenizer builds"))
}

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Describes the first difference between two token sequences with the token texts around it.
fn describe(tok: &Tokenizer, want: &[u32], got: &[u32]) -> String {
    let at = want.iter().zip(got).position(|(a, b)| a != b).unwrap_or(want.len().min(got.len()));
    let show = |s: &[u32]| {
        s.iter()
            .skip(at.saturating_sub(3))
            .take(8)
            .map(|&id| format!("{id}:{:?}", tok.token_text(id).unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "first difference at token {at} (lengths {} vs {})\n  llama.cpp: {}\n  kiln:      {}",
        want.len(),
        got.len(),
        show(want),
        show(got)
    )
}

/// Compares everything in the fixture; returns the number of token sequences checked.
fn check_model(file: &str, fixture_name: &str) {
    let Some(tok) = load(file) else { return };
    let fx = fixture(fixture_name);

    assert_eq!(tok.n_vocab() as u64, fx["n_vocab"].as_u64().unwrap(), "n_vocab");
    let opt = |v: &Value| v.as_u64().map(|x| x as u32);
    assert_eq!(tok.bos(), opt(&fx["bos"]), "bos");
    assert_eq!(tok.eos(), opt(&fx["eos"]), "eos");
    assert_eq!(tok.eot(), opt(&fx["eot"]), "eot");
    assert_eq!(tok.add_bos(), fx["add_bos"].as_bool().unwrap(), "add_bos");
    assert_eq!(tok.add_eos(), fx["add_eos"].as_bool().unwrap(), "add_eos");
    assert_eq!(tok.eog_ids(), ids(&fx["eog"]).as_slice(), "end-of-generation ids");
    let control: Vec<u32> = (0..tok.n_vocab() as u32).filter(|&i| tok.is_control(i)).collect();
    assert_eq!(control, ids(&fx["control"]), "control ids");

    let items = fx["items"].as_array().unwrap();
    let mut failures = Vec::new();
    let mut sequences = 0;
    for (n, item) in items.iter().enumerate() {
        let text = item["text"].as_str().unwrap();
        for (key, add_special, parse_special) in
            [("add_special", true, false), ("parse_special", false, true), ("both", true, true)]
        {
            sequences += 1;
            let want = ids(&item[key]);
            let got = tok.encode(text, add_special, parse_special);
            if want != got {
                failures.push(format!(
                    "item {n} {text:?} (add_special={add_special}, parse_special={parse_special}): {}",
                    describe(&tok, &want, &got)
                ));
            }
        }
        let both = ids(&item["both"]);
        for (key, special) in [("detok", false), ("detok_special", true)] {
            let want = unhex(item[key].as_str().unwrap());
            let got = tok.decode_bytes(&both, special);
            if want != got {
                failures.push(format!(
                    "item {n} {text:?}: decode(special={special}) gives {:?}, llama.cpp {:?}",
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want)
                ));
            }
        }
    }
    let pieces = fx["pieces"].as_array().unwrap();
    for p in pieces {
        let id = p[0].as_u64().unwrap() as u32;
        for (col, special) in [(1, false), (2, true)] {
            let want = unhex(p[col].as_str().unwrap());
            let got = tok.token_to_piece(id, special);
            if want != got {
                failures.push(format!(
                    "token_to_piece({id} {:?}, special={special}) = {got:?}, llama.cpp {want:?}",
                    tok.token_text(id)
                ));
            }
        }
    }
    eprintln!(
        "{file}: {} items x 3 modes = {sequences} token sequences, {} decodes, {} pieces compared; {} mismatches",
        items.len(),
        items.len() * 2,
        pieces.len() * 2,
        failures.len()
    );
    if let Some(first) = failures.first() {
        panic!(
            "{} mismatches with llama.cpp for {file}; first:\n{first}\n(all: {})",
            failures.len(),
            failures.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

#[test]
fn smollm2_matches_llama_cpp() {
    check_model(SMOLLM2, "smollm2.json");
}

#[test]
fn gemma3_matches_llama_cpp() {
    check_model(GEMMA3, "gemma3.json");
}

#[test]
fn reference_prompts() {
    if let Some(tok) = load(SMOLLM2) {
        assert_eq!(tok.encode("The capital of France is", false, false), [504, 3575, 282, 4649, 314]);
    }
    if let Some(tok) = load(GEMMA3) {
        assert_eq!(tok.encode("The capital of France is", true, false), [2, 818, 5279, 529, 7001, 563]);
        // Chat markup becomes single tokens only when special tokens are parsed.
        let chat = tok.encode("<start_of_turn>user\nhi<end_of_turn>", false, true);
        assert_eq!(chat.first(), tok.token_id("<start_of_turn>").as_ref());
        assert!(tok.is_eog(*chat.last().unwrap()));
        assert!(tok.encode("<start_of_turn>", false, false).len() > 1);
    }
}

fn corpus() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/tokenizer.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("corpus line is a JSON string"))
        .collect()
}

/// Plain text survives encode + decode unchanged (neither model adds a space prefix or cleans
/// up spaces), and streaming decode gives the same text as decoding all at once.
#[test]
fn round_trip_and_streaming() {
    for file in [SMOLLM2, GEMMA3] {
        let Some(tok) = load(file) else { continue };
        for text in corpus() {
            let ids = tok.encode(&text, false, false);
            assert_eq!(tok.decode(&ids, false), text, "{file}: round trip of {text:?}");
            let mut dec = tok.incremental_decoder(false);
            let mut streamed = String::new();
            for &id in &ids {
                streamed.push_str(&dec.push(id));
            }
            streamed.push_str(&dec.finish());
            assert_eq!(streamed, text, "{file}: streaming {text:?}");
        }
    }
}

/// Characters whose bytes are split across tokens appear only once complete.
#[test]
fn streaming_holds_back_partial_characters() {
    for file in [SMOLLM2, GEMMA3] {
        let Some(tok) = load(file) else { continue };
        for text in ["👨‍👩‍👧‍👦", "𓀀𓀁", "中文和English", "🇺🇸🇯🇵 flags", "ꦗꦮ"] {
            let ids = tok.encode(text, false, false);
            let mut dec = tok.incremental_decoder(false);
            let mut streamed = String::new();
            let mut held_back = false;
            for &id in &ids {
                let out = dec.push(id);
                let piece = tok.token_to_piece(id, false);
                held_back |= std::str::from_utf8(&piece).is_err();
                assert!(text.contains(&out), "{file}: {out:?} is not a whole part of {text:?}");
                streamed.push_str(&out);
            }
            assert!(dec.pending().is_empty());
            assert_eq!(dec.finish(), "");
            assert_eq!(streamed, text);
            if text.starts_with('𓀀') {
                assert!(held_back, "{file}: expected {text:?} to need byte tokens");
            }
        }
        // A truncated character is flushed as U+FFFD at the end.
        let ids = tok.encode("😀", false, false);
        if ids.len() > 1 {
            let mut dec = tok.incremental_decoder(false);
            assert_eq!(dec.push(ids[0]), "");
            assert_eq!(dec.finish(), "\u{FFFD}");
        }
    }
}

/// The same vocabularies with metadata overridden (other pre-tokenizers, a space prefix), as
/// recorded by `scripts/gen-tokenizer-fixtures.py --variant`: covers pre-tokenizers of models
/// that are not at hand.
fn check_variants(file: &str, fixture_name: &str) {
    let Some(path) = kiln_testdata::model_path(file) else { return };
    let gguf = kiln_gguf::GgufFile::open(&path).expect("model file parses");
    let base = kiln_tokenizer::VocabSpec::from_gguf(&gguf).expect("metadata reads");
    let fx = fixture(fixture_name);
    let texts = corpus();
    assert_eq!(fx["corpus_items"].as_u64().unwrap() as usize, texts.len(), "fixture is stale: regenerate it");
    let mut failures = Vec::new();
    for variant in fx["variants"].as_array().unwrap() {
        let mut spec = base.clone();
        let overrides = variant["overrides"].as_object().unwrap();
        for (key, value) in overrides {
            match key.as_str() {
                "tokenizer.ggml.pre" => spec.pre = Some(value.as_str().unwrap().to_string()),
                "tokenizer.ggml.add_space_prefix" => spec.add_space_prefix = value.as_bool(),
                other => panic!("unhandled override {other}"),
            }
        }
        let tok = Tokenizer::from_spec(spec).expect("variant builds");
        let all_ids = variant["parse_special"].as_array().unwrap();
        let detoks = variant["detok"].as_array().unwrap();
        let mut bad = 0;
        for (n, text) in texts.iter().enumerate() {
            let want = ids(&all_ids[n]);
            let got = tok.encode(text, false, true);
            if want != got {
                bad += 1;
                failures.push(format!("{overrides:?} item {n} {text:?}: {}", describe(&tok, &want, &got)));
            }
            let want_text = match detoks[n].as_str() {
                Some(hex) => unhex(hex),
                None => text.as_bytes().to_vec(),
            };
            let got_text = tok.decode_bytes(&want, false);
            if want_text != got_text {
                bad += 1;
                failures.push(format!(
                    "{overrides:?} item {n}: decode gives {:?}, llama.cpp {:?}",
                    String::from_utf8_lossy(&got_text),
                    String::from_utf8_lossy(&want_text)
                ));
            }
        }
        eprintln!("{file} {overrides:?}: {} items, {bad} mismatches", texts.len());
    }
    if let Some(first) = failures.first() {
        panic!("{} mismatches with llama.cpp; first:\n{first}", failures.len());
    }
}

#[test]
fn smollm2_vocab_with_other_pre_tokenizers_matches_llama_cpp() {
    check_variants(SMOLLM2, "smollm2-pre-variants.json");
}

#[test]
fn gemma3_vocab_with_space_prefix_matches_llama_cpp() {
    check_variants(GEMMA3, "gemma3-variants.json");
}
