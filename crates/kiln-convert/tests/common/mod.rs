//! Comparing a GGUF Kiln wrote with llama.cpp's.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_gguf::{GgufFile, Value};

/// Written by llama.cpp from the directory name or `--model-name` and the parameter count;
/// naming, not part of the model.
pub const NAMING_KEYS: [&str; 2] = ["general.name", "general.size_label"];

/// The Hugging Face fixture `arch` (`crates/kiln-models/tests/fixtures/hf/<arch>`).
pub fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-models/tests/fixtures/hf").join(arch)
}

/// The directories under `root` holding `hf/` and llama.cpp's `model.gguf` of it.
fn fixture_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("hf").is_dir() && p.join("model.gguf").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Every import fixture: the causal models' beside their transformers references
/// (`scripts/gen-hf-fixtures.py`), and this crate's (`tests/fixtures/README.md`).
pub fn fixtures() -> Vec<PathBuf> {
    let mut dirs = fixture_dirs(&fixture(""));
    dirs.extend(fixture_dirs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")));
    dirs
}

/// Converts the model directory `hf` to `out`, quantized by `scheme` if given.
pub fn convert(hf: &Path, out: &Path, scheme: Option<kiln_quant::QuantScheme>) {
    let mut file = std::fs::File::create(out).unwrap();
    kiln_convert::convert_dir(hf, &mut file, scheme, &mut |_| {}).unwrap_or_else(|e| panic!("{}: {e}", hf.display()));
}

/// Keys Kiln writes beyond llama.cpp's converter on purpose: Mistral's sliding window, which
/// llama.cpp's converter drops (see `src/arch/llama.rs`).
pub const KILN_ONLY_KEYS: [&str; 1] = ["llama.attention.sliding_window"];

fn metadata(f: &GgufFile) -> BTreeMap<String, Value> {
    f.metadata().iter().filter(|(k, _)| !NAMING_KEYS.contains(&k.as_str())).cloned().collect()
}

/// Checks `got` equals `want` in metadata and tensors; panics naming the first difference.
pub fn assert_same_gguf(what: &str, got: &GgufFile, want: &GgufFile) {
    let (got_meta, want_meta) = (metadata(got), metadata(want));
    for (k, v) in &want_meta {
        assert_eq!(got_meta.get(k), Some(v), "{what}: metadata {k}");
    }
    for k in got_meta.keys().filter(|k| !KILN_ONLY_KEYS.contains(&k.as_str())) {
        assert!(want_meta.contains_key(k), "{what}: metadata {k} is not in llama.cpp's file");
    }
    assert_eq!(got.tensors().len(), want.tensors().len(), "{what}: tensor count");
    for w in want.tensors() {
        let g = got.tensor(&w.name).unwrap_or_else(|| panic!("{what}: no tensor {}", w.name));
        assert_eq!((&g.dims, g.ggml_type), (&w.dims, w.ggml_type), "{what}: {}", w.name);
        assert!(got.tensor_data(g) == want.tensor_data(w), "{what}: {} bytes differ", w.name);
    }
}
