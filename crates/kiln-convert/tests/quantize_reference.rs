//! Quantization at import equals llama.cpp's `llama-quantize` of the same weights.
//!
//! `fixtures/quantized/qwen2.<scheme>.gguf` are `llama-quantize` of the `qwen2` fixture's F32
//! GGUF (`scripts/gen-quant-fixtures.sh`). Its rows (64 and 128 long) are not whole K-quant
//! blocks, so `q4_K_M` here checks the scheme's mixture and llama.cpp's fallback types; the
//! K-quant encoders themselves are checked in `kiln-quant`. Kiln quantizes the safetensors directory directly
//! (`convert_dir` with a scheme) and the F32 GGUF (`quantize_gguf`); both must give llama.cpp's
//! tensors byte for byte and its metadata (`general.file_type` included).

mod common;

use std::path::{Path, PathBuf};

use common::{assert_same_gguf, convert, fixture};
use kiln_gguf::GgufFile;
use kiln_quant::QuantScheme;
use kiln_testdata::TempDir;

fn reference(scheme: &str) -> GgufFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/quantized/qwen2.{scheme}.gguf"));
    GgufFile::open(path).unwrap()
}

/// Kiln's quantization of the qwen2 fixture by `scheme`: from its safetensors, from its GGUF.
fn both_ways(tmp: &TempDir, scheme: QuantScheme) -> [(String, GgufFile); 2] {
    let from_dir = tmp.0.join(format!("dir.{}.gguf", scheme.name()));
    convert(&fixture("qwen2").join("hf"), &from_dir, Some(scheme));
    let from_gguf: PathBuf = tmp.0.join(format!("gguf.{}.gguf", scheme.name()));
    let mut out = std::fs::File::create(&from_gguf).unwrap();
    kiln_convert::quantize_gguf(&fixture("qwen2").join("model.gguf"), &mut out, scheme, &mut |_| {}).unwrap();
    [
        (format!("{} from safetensors", scheme.name()), GgufFile::open(from_dir).unwrap()),
        (format!("{} from GGUF", scheme.name()), GgufFile::open(from_gguf).unwrap()),
    ]
}

fn tmp(tag: &str) -> TempDir {
    let tmp = TempDir::new(tag);
    std::fs::create_dir_all(&tmp.0).unwrap();
    tmp
}

#[test]
fn every_scheme_equals_llama_quantize() {
    let tmp = tmp("quantize-reference");
    for scheme in [QuantScheme::Q8_0, QuantScheme::Q4_0, QuantScheme::Q4KM, QuantScheme::F16] {
        let want = reference(scheme.name());
        for (what, got) in both_ways(&tmp, scheme) {
            assert_same_gguf(&what, &got, &want);
        }
    }
}

#[test]
fn quantized_tensors_are_not_requantized() {
    let tmp = tmp("quantize-twice");
    let q8 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quantized/qwen2.q8_0.gguf");
    let mut out = Vec::new();
    let err = kiln_convert::quantize_gguf(&q8, &mut out, QuantScheme::Q4_0, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("is already quantized (Q8_0); requantizing it to Q4_0 is refused"), "{err}");
    // Keeping the type it has is a copy, not a requantization.
    let same = tmp.0.join("same.gguf");
    let mut statuses = Vec::new();
    kiln_convert::quantize_gguf(&q8, &mut std::fs::File::create(&same).unwrap(), QuantScheme::Q8_0, &mut |s| {
        statuses.push(s)
    })
    .unwrap();
    assert_eq!(statuses, ["quantizing Q8_0 model to Q8_0"]);
    assert_same_gguf("q8_0 again", &GgufFile::open(&same).unwrap(), &reference("q8_0"));
}
