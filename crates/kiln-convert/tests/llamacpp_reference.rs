//! Kiln's conversion of every Hugging Face fixture equals llama.cpp's.
//!
//! `crates/kiln-models/tests/fixtures/hf/<arch>/hf` are tiny random-weight models saved by
//! transformers, and `model.gguf` beside each is llama.cpp's `convert_hf_to_gguf.py
//! --outtype f32` of it (`scripts/gen-hf-fixtures.py`). Converting `hf/` here must give the
//! same tensors (names, shapes, types, bytes) and the same metadata, except the keys llama.cpp
//! derives from the model's name ([`NAMING_KEYS`]): Kiln's library names models itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_gguf::{GgufFile, Value};
use kiln_testdata::TempDir;

/// Written by llama.cpp from the directory name or `--model-name` and the parameter count;
/// naming, not part of the model.
const NAMING_KEYS: [&str; 2] = ["general.name", "general.size_label"];

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-models/tests/fixtures/hf");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("hf").is_dir() && p.join("model.gguf").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn convert(hf: &Path, out: &Path) {
    let mut file = std::fs::File::create(out).unwrap();
    kiln_convert::convert_dir(hf, &mut file, None, &mut |_| {}).unwrap_or_else(|e| panic!("{}: {e}", hf.display()));
}

fn metadata(f: &GgufFile) -> BTreeMap<String, Value> {
    f.metadata().iter().filter(|(k, _)| !NAMING_KEYS.contains(&k.as_str())).cloned().collect()
}

/// Checks `got` equals `want` in metadata and tensors; panics naming the first difference.
pub fn assert_same_gguf(what: &str, got: &GgufFile, want: &GgufFile) {
    let (got_meta, want_meta) = (metadata(got), metadata(want));
    for (k, v) in &want_meta {
        assert_eq!(got_meta.get(k), Some(v), "{what}: metadata {k}");
    }
    for k in got_meta.keys() {
        assert!(want_meta.contains_key(k), "{what}: metadata {k} is not in llama.cpp's file");
    }
    assert_eq!(got.tensors().len(), want.tensors().len(), "{what}: tensor count");
    for w in want.tensors() {
        let g = got.tensor(&w.name).unwrap_or_else(|| panic!("{what}: no tensor {}", w.name));
        assert_eq!((&g.dims, g.ggml_type), (&w.dims, w.ggml_type), "{what}: {}", w.name);
        assert!(got.tensor_data(g) == want.tensor_data(w), "{what}: {} bytes differ", w.name);
    }
}

#[test]
fn every_fixture_converts_as_llama_cpp_converts_it() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 10, "fixtures missing: {fixtures:?}");
    let tmp = TempDir::new("convert-reference");
    std::fs::create_dir_all(&tmp.0).unwrap();
    for dir in fixtures {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let out = tmp.0.join(format!("{name}.gguf"));
        convert(&dir.join("hf"), &out);
        let got = GgufFile::open(&out).unwrap();
        let want = GgufFile::open(dir.join("model.gguf")).unwrap();
        assert_same_gguf(&name, &got, &want);
    }
}
