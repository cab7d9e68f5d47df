//! Against llama.cpp's CPU backend itself (fixtures `dot_llamacpp_*.bin`, written by
//! `scripts/gen-dequant-fixtures.py --ggml-cpu`): for the same weights (real model rows and
//! synthetic ones) and the same float activations,
//!
//! 1. `quantize_row` to the weight type's `vec_dot_type` produces exactly llama.cpp's bytes;
//! 2. `vec_dot` (with every implementation) agrees with llama.cpp's `vec_dot`. The integer block
//!    sums are the same; only the float summation order differs, so the difference is bounded
//!    by a few f32 roundings of the sum of the terms' magnitudes: `<= 2e-6 Σ |ŵ x̂|`.

use kiln_quant::{dequantize_row, kernels, quantize_row, row_bytes, GgmlType};
use std::path::Path;

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn matches_llamacpp_quantizer_and_vec_dot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("dot_llamacpp_"))
        .collect();
    files.sort();
    assert!(files.len() >= 13, "expected a llama.cpp fixture per weight type");
    for file in files {
        let b = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(&b[..4], b"KQLD");
        assert_eq!(u32_at(&b, 4), 1);
        let ty = GgmlType::from_id(u32_at(&b, 8) as u32).unwrap();
        let act = GgmlType::from_id(u32_at(&b, 12) as u32).unwrap();
        assert_eq!(act, kiln_quant::vec_dot_type(ty), "{name}");
        let (rows, m, k) = (u32_at(&b, 16), u32_at(&b, 20), u32_at(&b, 24));
        let (wr, xr) = (row_bytes(ty, k), row_bytes(act, k));
        let mut at = 28;
        let w = &b[at..at + rows * wr];
        at += rows * wr;
        let x = floats(&b[at..at + m * k * 4]);
        at += m * k * 4;
        let xq_llama = &b[at..at + m * xr];
        at += m * xr;
        let dots = floats(&b[at..at + rows * m * 4]);
        assert_eq!(at + rows * m * 4, b.len(), "{name}");

        let mut xq = vec![0u8; m * xr];
        for c in 0..m {
            quantize_row(act, &x[c * k..(c + 1) * k], &mut xq[c * xr..(c + 1) * xr]);
        }
        assert!(xq == xq_llama, "{name}: activation bytes differ from llama.cpp's");

        let mut worst = 0.0f64;
        for r in 0..rows {
            let mut wd = vec![0.0f32; k];
            dequantize_row(ty, &w[r * wr..(r + 1) * wr], &mut wd);
            for c in 0..m {
                let mut xd = vec![0.0f32; k];
                dequantize_row(act, &xq[c * xr..(c + 1) * xr], &mut xd);
                let mag: f64 = wd.iter().zip(&xd).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
                for kern in kernels() {
                    let got = kern.vec_dot(ty, k, &w[r * wr..(r + 1) * wr], &xq[c * xr..(c + 1) * xr]);
                    let diff = (got as f64 - dots[r * m + c] as f64).abs();
                    worst = worst.max(diff / mag.max(f64::MIN_POSITIVE));
                    assert!(
                        diff <= 2e-6 * mag + 1e-30,
                        "{name} {} r={r} c={c}: ours {got}, llama.cpp {}",
                        kern.name(),
                        dots[r * m + c]
                    );
                }
            }
        }
        eprintln!("{name}: largest |ours - llama.cpp| / Σ|ŵx̂| = {worst:.2e}");
    }
}
