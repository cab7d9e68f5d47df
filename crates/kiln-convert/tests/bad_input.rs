//! A broken model directory fails with a message naming what is wrong, never a panic.

use std::path::{Path, PathBuf};

use kiln_testdata::TempDir;
use serde_json::{Map, Value};

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-models/tests/fixtures/hf").join(arch).join("hf")
}

/// A copy of the `qwen2` fixture's model directory to break.
fn copy_of_qwen2(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::create_dir_all(&dir.0).unwrap();
    for entry in std::fs::read_dir(fixture("qwen2")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.0.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn convert_error(dir: &Path) -> String {
    let mut out = Vec::new();
    match kiln_convert::convert_dir(dir, &mut out, None, &mut |_| {}) {
        Ok(_) => panic!("{} converted", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Map<String, Value>)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(path, v.to_string()).unwrap();
}

/// Rewrites `model.safetensors` with its header edited and the data unchanged.
fn edit_header(dir: &Path, edit: impl FnOnce(&mut Map<String, Value>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    edit(header.as_object_mut().unwrap());
    let header = header.to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&bytes[8 + len..]);
    std::fs::write(&path, out).unwrap();
}

#[test]
fn the_unbroken_copy_converts() {
    let dir = copy_of_qwen2("convert-ok");
    let mut out = Vec::new();
    kiln_convert::convert_dir(&dir.0, &mut out, None, &mut |_| {}).unwrap();
    assert_eq!(&out[..4], b"GGUF");
}

#[test]
fn missing_files() {
    let dir = copy_of_qwen2("convert-no-config");
    std::fs::remove_file(dir.0.join("config.json")).unwrap();
    assert!(convert_error(&dir.0).contains("config.json is missing"));

    let dir = copy_of_qwen2("convert-no-tokenizer");
    std::fs::remove_file(dir.0.join("tokenizer.json")).unwrap();
    assert!(convert_error(&dir.0).contains("tokenizer.json is missing"));
}

#[test]
fn unknown_architecture() {
    let dir = copy_of_qwen2("convert-arch");
    edit_json(&dir.0.join("config.json"), |c| {
        c.insert("architectures".into(), serde_json::json!(["GPT2LMHeadModel"]));
    });
    let err = convert_error(&dir.0);
    assert!(err.contains("architecture GPT2LMHeadModel is not supported for import"), "{err}");
}

#[test]
fn missing_and_unexpected_tensors() {
    let dir = copy_of_qwen2("convert-missing");
    edit_header(&dir.0, |h| {
        h.remove("model.layers.1.self_attn.v_proj.weight");
    });
    let err = convert_error(&dir.0);
    assert!(err.contains("tensor model.layers.1.self_attn.v_proj.weight is missing"), "{err}");

    let dir = copy_of_qwen2("convert-extra");
    edit_header(&dir.0, |h| {
        let norm = h["model.norm.weight"].clone();
        h.insert("model.extra_norm.weight".into(), norm);
    });
    let err = convert_error(&dir.0);
    assert!(err.contains("tensor model.extra_norm.weight in the checkpoint is not one this architecture has"), "{err}");
}

#[test]
fn shape_mismatch_with_the_config() {
    let dir = copy_of_qwen2("convert-shape");
    edit_json(&dir.0.join("config.json"), |c| {
        c.insert("num_key_value_heads".into(), 4.into());
    });
    let err = convert_error(&dir.0);
    assert!(
        err.contains("tensor model.layers.0.self_attn.k_proj.weight has shape [32, 64], expected [64, 64]"),
        "{err}"
    );
}

#[test]
fn unsupported_dtype() {
    let dir = copy_of_qwen2("convert-dtype");
    edit_header(&dir.0, |h| {
        h["model.norm.weight"]["dtype"] = "I32".into();
    });
    let err = convert_error(&dir.0);
    assert!(err.contains("tensor model.norm.weight is stored as I32; only F32, F16 and BF16"), "{err}");
}

#[test]
fn truncated_and_corrupt_safetensors() {
    let dir = copy_of_qwen2("convert-truncated");
    let path = dir.0.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = convert_error(&dir.0);
    assert!(err.contains("not a valid safetensors file") && err.contains("(truncated?)"), "{err}");

    std::fs::write(&path, &bytes[..1000]).unwrap();
    let err = convert_error(&dir.0);
    assert!(err.contains("the header claims"), "{err}");

    let mut corrupt = bytes.clone();
    corrupt[8] = b'[';
    std::fs::write(&path, corrupt).unwrap();
    let err = convert_error(&dir.0);
    assert!(err.contains("the header is not JSON"), "{err}");
}

#[test]
fn unknown_tokenizers_are_refused_by_name() {
    let dir = copy_of_qwen2("convert-spm");
    edit_json(&dir.0.join("tokenizer.json"), |t| {
        t.get_mut("model").unwrap()["byte_fallback"] = true.into();
    });
    let err = convert_error(&dir.0);
    assert!(err.contains("a byte-fallback tokenizer.json needs its SentencePiece tokenizer.model"), "{err}");

    let dir = copy_of_qwen2("convert-pre");
    edit_json(&dir.0.join("tokenizer.json"), |t| {
        t.insert("pre_tokenizer".into(), serde_json::json!({"type": "Metaspace", "replacement": "▁"}));
    });
    let err = convert_error(&dir.0);
    assert!(err.contains("the pre-tokenizer [Other(\"Metaspace\")] is not one Kiln knows"), "{err}");
}
