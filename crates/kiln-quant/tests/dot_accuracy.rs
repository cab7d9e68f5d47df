//! The dot product of a weight row with quantized activations, against f64 dot products of the
//! dequantized weights (with the kernels in use, `vec_dot`, and every implementation's `gemm`):
//!
//! 1. against the dequantized activations `x̂`: the kernels compute `Σ ŵ x̂` exactly up to f32
//!    rounding of the block terms, so `|got - Σ ŵ x̂| <= 1e-5 Σ |ŵ x̂|`;
//! 2. against the original activations `x`: the only extra error is activation quantization,
//!    so `|got - Σ ŵ x| <= Σ |ŵ| e + 1e-5 Σ |ŵ x̂|`, where `e` is the format's worst-case
//!    per-element activation error: Q8_0/Q8_1 half a step `amax / 254` plus `127 |d - f16(d)|`;
//!    Q8_K half a step `|d| / 2`; F16 and BF16 half an ulp of the element; F32 none.

mod common;

use common::{random_acts, random_weights, Rng, WEIGHT_TYPES};
use kiln_quant::{dequantize_row, kernels, row_bytes, scalar, vec_dot, vec_dot_type, GgmlType};

/// Worst-case |x - x̂| per element for activations quantized to `act`.
fn act_error(act: GgmlType, x: &[f32]) -> Vec<f64> {
    match act {
        GgmlType::Q8_0 | GgmlType::Q8_1 => x
            .chunks(32)
            .flat_map(|b| {
                let d = b.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
                let d16 = half::f16::from_f32(d).to_f32();
                let e = 0.5 * d as f64 + 127.0 * (d as f64 - d16 as f64).abs();
                std::iter::repeat_n(e * (1.0 + 1e-6), 32)
            })
            .collect(),
        GgmlType::Q8_K => x
            .chunks(256)
            .flat_map(|b| {
                let amax = b.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                std::iter::repeat_n(0.5 * amax as f64 / 127.0 * (1.0 + 1e-5), 256)
            })
            .collect(),
        GgmlType::F16 => x.iter().map(|v| v.abs() as f64 * 2f64.powi(-11) + 1e-7).collect(),
        GgmlType::BF16 => x.iter().map(|v| v.abs() as f64 * 2f64.powi(-8) + 1e-38).collect(),
        _ => vec![0.0; x.len()],
    }
}

#[test]
fn dot_products_within_quantization_error() {
    let mut rng = Rng::new(99);
    for ty in WEIGHT_TYPES {
        for &k in &[256usize, 768, 2048] {
            let act = vec_dot_type(ty);
            let w = random_weights(&mut rng, ty, 3, k);
            let (x, xq) = random_acts(&mut rng, ty, 2, k);
            let (wr, xr) = (row_bytes(ty, k), row_bytes(act, k));
            for r in 0..3 {
                let mut wd = vec![0.0f32; k];
                dequantize_row(ty, &w[r * wr..(r + 1) * wr], &mut wd);
                for c in 0..2 {
                    let xc = &x[c * k..(c + 1) * k];
                    let mut xd = vec![0.0f32; k];
                    dequantize_row(act, &xq[c * xr..(c + 1) * xr], &mut xd);
                    let exact: f64 = wd.iter().zip(&xd).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let mag: f64 = wd.iter().zip(&xd).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
                    let to_x: f64 = wd.iter().zip(xc).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let qerr: f64 = wd.iter().zip(act_error(act, xc)).map(|(&a, e)| a.abs() as f64 * e).sum();
                    let mut got = vec![vec_dot(ty, k, &w[r * wr..(r + 1) * wr], &xq[c * xr..(c + 1) * xr])];
                    for kern in kernels() {
                        let mut y = vec![0.0f32; 6];
                        kern.gemm(ty, k, 3, &w, 2, &xq, &mut y);
                        got.push(y[r * 2 + c]);
                    }
                    got.push(scalar::vec_dot(ty, k, &w[r * wr..(r + 1) * wr], &xq[c * xr..(c + 1) * xr]));
                    for g in got {
                        let g = g as f64;
                        let ctx = format!("{ty} k={k} r={r} c={c}: got {g}, Σŵx̂ {exact}, Σŵx {to_x}");
                        assert!((g - exact).abs() <= 1e-5 * mag + 1e-30, "{ctx}");
                        assert!((g - to_x).abs() <= qerr + 1e-5 * mag + 1e-30, "{ctx}, bound {qerr}");
                    }
                }
            }
        }
    }
}
