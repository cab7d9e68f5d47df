//! `QuantScheme::tensor_type` against the types llama.cpp's `llama-quantize` chose for every
//! tensor of real and synthetic models, per scheme (fixture written by
//! `scripts/gen-quant-scheme-fixtures.py`).

use kiln_quant::{GgmlType, QuantScheme, TensorRole};
use serde_json::Value;

fn ggml_type(name: &str) -> GgmlType {
    let all = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];
    *all.iter().find(|t| t.to_string() == name).unwrap_or_else(|| panic!("unexpected type {name}"))
}

#[test]
fn tensor_types_match_llama_quantize() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quant_schemes.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let schemes: Vec<QuantScheme> =
        doc["schemes"].as_array().unwrap().iter().map(|s| QuantScheme::parse(s.as_str().unwrap()).unwrap()).collect();
    assert_eq!(schemes.len(), QuantScheme::ALL.len(), "every scheme has a reference");
    let mut mismatches = Vec::new();
    let mut checked = 0;
    for model in doc["models"].as_array().unwrap() {
        let source = model["source"].as_str().unwrap();
        for t in model["tensors"].as_array().unwrap() {
            let name = t[0].as_str().unwrap();
            let dims: Vec<u64> = t[1].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
            let role = TensorRole {
                name,
                dims: &dims,
                n_layers: model["n_layers"].as_u64().unwrap() as usize,
                arch: model["arch"].as_str().unwrap(),
                n_expert: model["n_expert"].as_u64().unwrap() as usize,
                has_output: model["has_output"].as_bool().unwrap(),
            };
            for (scheme, want) in schemes.iter().zip(t[2].as_array().unwrap()) {
                let (got, want) = (scheme.tensor_type(&role), ggml_type(want.as_str().unwrap()));
                if got != want {
                    mismatches.push(format!("{source} {name} {dims:?} {}: {got}, llama.cpp {want}", scheme.name()));
                }
                checked += 1;
            }
        }
    }
    assert!(mismatches.is_empty(), "{} of {checked} differ:\n{}", mismatches.len(), mismatches.join("\n"));
}
