//! Writes the fuzz seed corpus: small synthetic GGUF files that reach every part of the
//! parser (each value type, nested arrays, both versions, custom alignment, several tensor
//! types). Real model files are too big to be useful seeds, and a truncated one only
//! exercises the "truncated" path.
//!
//! `cargo run -p kiln-gguf --example make_fuzz_seeds -- OUT_DIR`

#[path = "../tests/common/mod.rs"]
mod common;

use common::{pattern, sample_builder, GgufBuilder};
use kiln_gguf::{Array, GgmlType, Value};

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let scalars = GgufBuilder::new()
        .kv("u8", Value::U8(1))
        .kv("i8", Value::I8(-1))
        .kv("u16", Value::U16(2))
        .kv("i16", Value::I16(-2))
        .kv("u32", Value::U32(3))
        .kv("i32", Value::I32(-3))
        .kv("u64", Value::U64(4))
        .kv("i64", Value::I64(-4))
        .kv("f32", Value::F32(0.5))
        .kv("f64", Value::F64(0.25))
        .kv("bool", Value::Bool(true))
        .kv("str", Value::String("s".into()));
    let arrays = GgufBuilder::new()
        .version(2)
        .kv("a.u8", Value::Array(Array::U8(vec![1, 2])))
        .kv("a.i8", Value::Array(Array::I8(vec![-1])))
        .kv("a.u16", Value::Array(Array::U16(vec![3])))
        .kv("a.i16", Value::Array(Array::I16(vec![-3])))
        .kv("a.u32", Value::Array(Array::U32(vec![4])))
        .kv("a.i32", Value::Array(Array::I32(vec![-4])))
        .kv("a.u64", Value::Array(Array::U64(vec![5])))
        .kv("a.i64", Value::Array(Array::I64(vec![-5])))
        .kv("a.f32", Value::Array(Array::F32(vec![1.0])))
        .kv("a.f64", Value::Array(Array::F64(vec![2.0])))
        .kv("a.bool", Value::Array(Array::Bool(vec![false, true])))
        .kv("a.str", Value::Array(Array::String(vec!["x".into(), "".into()])))
        .kv(
            "a.nested",
            Value::Array(Array::Array(vec![Array::Array(vec![Array::U8(vec![9])]), Array::String(vec!["y".into()])])),
        );
    let aligned = GgufBuilder::new()
        .kv("general.alignment", Value::U32(8))
        .tensor("a", &[3], GgmlType::F32, pattern(12, 1))
        .tensor("b", &[32, 2], GgmlType::Q8_0, pattern(68, 2))
        .tensor("c", &[256], GgmlType::Q4_K, pattern(144, 3))
        .tensor("d", &[1, 1, 1, 2], GgmlType::BF16, pattern(4, 4));
    let quant_types = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q6_K];
    let mut quants = GgufBuilder::new().kv("general.architecture", Value::String("llama".into()));
    for (i, ty) in quant_types.into_iter().enumerate() {
        let n = ty.block_size() as u64;
        let size = ty.type_size();
        quants = quants.tensor(&format!("blk.{i}.w"), &[n, 2], ty, pattern(2 * size, i as u8));
    }
    vec![
        ("sample_v3.gguf", sample_builder().build()),
        ("sample_v2.gguf", sample_builder().version(2).build()),
        ("scalars.gguf", scalars.build()),
        ("arrays_v2.gguf", arrays.build()),
        ("aligned_8.gguf", aligned.build()),
        ("quant_types.gguf", quants.build()),
        ("empty_v3.gguf", GgufBuilder::new().build()),
        ("empty_tensor.gguf", GgufBuilder::new().tensor("e", &[0], GgmlType::F16, vec![]).build()),
    ]
}

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: make_fuzz_seeds OUT_DIR");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in seeds() {
        // Every seed must parse: an invalid seed teaches the fuzzer nothing about the
        // later stages of the parser.
        if let Err(e) = kiln_gguf::GgufFile::from_bytes(bytes.clone()) {
            eprintln!("seed {name} does not parse: {e}");
            std::process::exit(1);
        }
        std::fs::write(dir.join(name), &bytes)?;
        println!("{name}: {} bytes", bytes.len());
    }
    Ok(())
}
