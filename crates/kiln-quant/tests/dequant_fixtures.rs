//! Dequantization against the Python `gguf` package's dequantizer, on rows of the real models'
//! tensors and on synthetic tensors (fixtures written by `scripts/gen-dequant-fixtures.py`).
//! Equality is exact (0 ulp): both follow ggml's formulas with the same f32 roundings.
//! Fixtures with float inputs also check the reference weight quantizers byte for byte (the
//! K formats' inputs and bytes come from ggml's own `ggml_quantize_chunk`), and their
//! quantize → dequantize error against the error of ggml's bytes.

mod common;

use kiln_quant::{dequantize_row, quantize_row, row_bytes, scalar, GgmlType};
use std::path::Path;

struct Fixture {
    file: String,
    ty: GgmlType,
    rows: usize,
    k: usize,
    raw: Vec<u8>,
    expected: Vec<f32>,
    inputs: Option<Vec<f32>>,
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn parse(file: &Path) -> Fixture {
    let b = std::fs::read(file).unwrap();
    assert_eq!(&b[..4], b"KQFX", "{}", file.display());
    assert_eq!(u32_at(&b, 4), 1);
    let ty = GgmlType::from_id(u32_at(&b, 8) as u32).unwrap();
    let (rows, k, flags, name_len) = (u32_at(&b, 12), u32_at(&b, 16), u32_at(&b, 20), u32_at(&b, 24));
    let mut at = 28 + name_len;
    let raw_len = rows * row_bytes(ty, k);
    let raw = b[at..at + raw_len].to_vec();
    at += raw_len;
    let expected = floats(&b[at..at + rows * k * 4]);
    at += rows * k * 4;
    let inputs = (flags & 1 != 0).then(|| floats(&b[at..at + rows * k * 4]));
    at += if flags & 1 != 0 { rows * k * 4 } else { 0 };
    assert_eq!(at, b.len(), "{}: trailing bytes", file.display());
    Fixture { file: file.display().to_string(), ty, rows, k, raw, expected, inputs }
}

fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("dequant_"))
        .collect();
    files.sort();
    files.iter().map(|f| parse(f)).collect()
}

#[test]
fn dequantize_matches_gguf_python() {
    let all = fixtures();
    for f in &all {
        let rb = row_bytes(f.ty, f.k);
        for r in 0..f.rows {
            let mut got = vec![0.0f32; f.k];
            dequantize_row(f.ty, &f.raw[r * rb..(r + 1) * rb], &mut got);
            for (i, (g, e)) in got.iter().zip(&f.expected[r * f.k..(r + 1) * f.k]).enumerate() {
                assert_eq!(g.to_bits(), e.to_bits(), "{} row {r} element {i}: {g} vs {e}", f.file);
            }
        }
    }
    // Every weight type is covered, and the real models' types come from real tensors.
    for ty in common::WEIGHT_TYPES {
        assert!(all.iter().any(|f| f.ty == ty), "no fixture for {ty}");
    }
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_0, GgmlType::Q6_K] {
        assert!(all.iter().any(|f| f.ty == ty && !f.file.contains("synthetic")), "no real-model fixture for {ty}");
    }
}

#[test]
fn reference_quantizers_match_gguf_python() {
    for f in fixtures() {
        let Some(inputs) = &f.inputs else { continue };
        let rb = row_bytes(f.ty, f.k);
        for r in 0..f.rows {
            let mut got = vec![0u8; rb];
            let src = &inputs[r * f.k..(r + 1) * f.k];
            match f.ty {
                GgmlType::F16 | GgmlType::BF16 => quantize_row(f.ty, src, &mut got),
                _ => scalar::quantize_weights_row(f.ty, src, &mut got),
            }
            assert_eq!(got, &f.raw[r * rb..(r + 1) * rb], "{} row {r}", f.file);
        }
    }
}

/// Σ (dequantized - input)² over one row.
fn squared_error(dequantized: &[f32], input: &[f32]) -> f64 {
    dequantized.iter().zip(input).map(|(&d, &x)| (d as f64 - x as f64).powi(2)).sum()
}

#[test]
fn weight_quantizer_round_trip_error_is_within_ggmls() {
    let mut checked = Vec::new();
    for f in fixtures() {
        let Some(inputs) = &f.inputs else { continue };
        if matches!(f.ty, GgmlType::F16 | GgmlType::BF16) {
            continue;
        }
        let rb = row_bytes(f.ty, f.k);
        for r in 0..f.rows {
            let src = &inputs[r * f.k..(r + 1) * f.k];
            let mut q = vec![0u8; rb];
            scalar::quantize_weights_row(f.ty, src, &mut q);
            let mut back = vec![0.0f32; f.k];
            dequantize_row(f.ty, &q, &mut back);
            let ours = squared_error(&back, src);
            let ggml = squared_error(&f.expected[r * f.k..(r + 1) * f.k], src);
            assert!(ours <= ggml, "{} row {r}: squared error {ours} above ggml's {ggml}", f.file);
        }
        checked.push(f.ty);
    }
    for ty in
        [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K]
    {
        assert!(checked.contains(&ty), "no round-trip fixture for {ty}");
    }
}
