//! Activation quantization: the rounding rules of llama.cpp's x86 backend, the stored sums
//! (`Q8_1`'s `s`, `Q8_K`'s `bsums`), and round trips within the format's error bound.

mod common;

use common::Rng;
use kiln_quant::blocks::{f32_to_bf16_bits, f32_to_f16_bits};
use kiln_quant::{dequantize_row, quantize_row, row_bytes, GgmlType};

fn quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; row_bytes(ty, x.len())];
    quantize_row(ty, x, &mut out);
    out
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

#[test]
fn q8_0_rounds_ties_to_even() {
    // amax = 127 makes the multiplier exactly 1, so the quants are round(x) with ties to even
    // (llama.cpp's x86 quantizer rounds with _MM_ROUND_NEAREST).
    let mut x = [0.0f32; 32];
    x[..8].copy_from_slice(&[127.0, 2.5, 3.5, -2.5, -3.5, 0.5, -0.5, 1.49]);
    let q = quantize(GgmlType::Q8_0, &x);
    assert_eq!(f16_at(&q, 0), 1.0);
    let qs: Vec<i8> = q[2..10].iter().map(|&b| b as i8).collect();
    assert_eq!(qs, [127, 2, 4, -2, -4, 0, 0, 1]);
}

#[test]
fn q8_0_and_q8_1_round_trip() {
    let mut rng = Rng::new(7);
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1] {
        let x: Vec<f32> = (0..32 * 20).map(|_| rng.activation()).collect();
        let q = quantize(ty, &x);
        let mut back = vec![0.0; x.len()];
        dequantize_row(ty, &q, &mut back);
        for (b, (xb, qb)) in x.chunks(32).zip(q.chunks(ty.type_size())).enumerate() {
            let amax = xb.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            assert_eq!(f16_at(qb, 0), half::f16::from_f32(d).to_f32(), "block {b}");
            let qs = &qb[ty.type_size() - 32..];
            let mut sum = 0i32;
            for j in 0..32 {
                let v = qs[j] as i8;
                assert_eq!(v as f32, (xb[j] * (127.0 / amax)).round_ties_even(), "block {b} {j}");
                assert!(v != -128);
                sum += v as i32;
                // Error: half a step, plus the f16 rounding of d times |q| <= 127.
                let bound = 0.5 * d + 127.0 * (d - f16_at(qb, 0)).abs() + 1e-6 * amax;
                assert!((back[b * 32 + j] - xb[j]).abs() <= bound, "block {b} {j}");
            }
            if ty == GgmlType::Q8_1 {
                assert_eq!(f16_at(qb, 2), half::f16::from_f32(d * sum as f32).to_f32());
            }
        }
    }
}

#[test]
fn q8_k_round_trip_and_bsums() {
    let mut rng = Rng::new(11);
    let x: Vec<f32> = (0..256 * 6).map(|_| rng.activation()).collect();
    let q = quantize(GgmlType::Q8_K, &x);
    let mut back = vec![0.0; x.len()];
    dequantize_row(GgmlType::Q8_K, &q, &mut back);
    for (b, (xb, qb)) in x.chunks(256).zip(q.chunks(292)).enumerate() {
        let d = f32::from_le_bytes(qb[..4].try_into().unwrap());
        // The element of largest magnitude maps to -127 (d carries the sign).
        let (imax, _) = xb.iter().enumerate().fold(
            (0, 0.0f32),
            |(bi, ba), (i, v)| {
                if v.abs() > ba {
                    (i, v.abs())
                } else {
                    (bi, ba)
                }
            },
        );
        assert_eq!(qb[4 + imax] as i8, -127, "block {b}");
        for j in 0..256 {
            assert!((back[b * 256 + j] - xb[j]).abs() <= 0.5 * d.abs() * (1.0 + 1e-5), "{b} {j}");
        }
        for i in 0..16 {
            let want: i32 = qb[4 + 16 * i..4 + 16 * i + 16].iter().map(|&v| v as i8 as i32).sum();
            let got = i16::from_le_bytes([qb[260 + 2 * i], qb[261 + 2 * i]]);
            assert_eq!(got as i32, want, "block {b} bsum {i}");
        }
    }
}

#[test]
fn zero_blocks() {
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
        let q = quantize(ty, &[0.0; 256]);
        assert!(q.iter().all(|&b| b == 0), "{ty}");
        let mut back = vec![1.0; 256];
        dequantize_row(ty, &q, &mut back);
        assert!(back.iter().all(|&v| v == 0.0), "{ty}");
    }
}

#[test]
fn float_activation_types() {
    let x = [1.0f32, -2.5, 0.1, 1.0e-8, 70000.0, f32::NAN, 1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0];
    let q = quantize(GgmlType::F32, &x);
    let mut back = vec![0.0; x.len()];
    dequantize_row(GgmlType::F32, &q, &mut back);
    for (a, b) in x.iter().zip(&back) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
    let q = quantize(GgmlType::F16, &x);
    for (i, v) in x.iter().enumerate() {
        assert_eq!(u16::from_le_bytes([q[2 * i], q[2 * i + 1]]), f32_to_f16_bits(*v));
    }
    let q = quantize(GgmlType::BF16, &x);
    let bf: Vec<u16> = q.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(bf[0], 0x3f80);
    assert_eq!(bf[5] & 0x7fc0, 0x7fc0, "NaN stays a quiet NaN");
    // Ties go to even: 1 + 1/256 sits halfway between 1 and 1 + 1/128.
    assert_eq!(bf[6], 0x3f80);
    assert_eq!(bf[7], 0x3f82);
    assert_eq!(f32_to_bf16_bits(70000.0), bf[4]);
}

#[test]
fn weight_quantizers_via_quantize_row() {
    // The simple weight formats round trip within half a step of their scale.
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..32 * 8).map(|_| rng.sym(2.0)).collect();
    for (ty, steps) in [(GgmlType::Q4_0, 8.0), (GgmlType::Q5_0, 16.0), (GgmlType::Q4_1, 15.0), (GgmlType::Q5_1, 31.0)] {
        let q = quantize(ty, &x);
        let mut back = vec![0.0; x.len()];
        dequantize_row(ty, &q, &mut back);
        for (b, xb) in x.chunks(32).enumerate() {
            let (lo, hi) = xb.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            let range = if steps < 10.0 || ty == GgmlType::Q5_0 { hi.abs().max(lo.abs()) } else { hi - lo };
            let step = range / steps;
            for j in 0..32 {
                // Half a step, one more step for the clamped end of the symmetric formats,
                // plus f16 rounding of the scale and min.
                let bound = 1.5 * step + 0.01 * range;
                assert!((back[b * 32 + j] - xb[j]).abs() <= bound, "{ty} block {b} {j}");
            }
        }
    }
}

#[test]
#[should_panic]
fn k_weights_cannot_be_produced() {
    quantize(GgmlType::Q4_K, &[0.0; 256]);
}

#[test]
fn simd_quantizers_match_scalar() {
    let mut rng = Rng::new(5);
    for n_blocks in [1usize, 3, 8] {
        let mut x: Vec<f32> = (0..256 * n_blocks).map(|_| rng.activation()).collect();
        // Ties in magnitude with opposite signs (Q8_K takes the first), a zero block, and
        // exact halves.
        x[3] = 9.0;
        x[200] = -9.0;
        x[32..64].fill(0.0);
        x[70] = 0.5;
        for kern in kiln_quant::kernels() {
            for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::F16, GgmlType::BF16, GgmlType::F32] {
                let mut want = vec![0u8; row_bytes(ty, x.len())];
                kiln_quant::scalar::quantize_row(ty, &x, &mut want);
                let mut got = vec![0u8; want.len()];
                kern.quantize_row(ty, &x, &mut got);
                assert_eq!(got, want, "{} {ty} blocks={n_blocks}", kern.name());
            }
            // F16 rows whose length is not a multiple of eight.
            let mut want = vec![0u8; 2 * 13];
            kiln_quant::scalar::quantize_row(GgmlType::F16, &x[..13], &mut want);
            let mut got = vec![0u8; want.len()];
            kern.quantize_row(GgmlType::F16, &x[..13], &mut got);
            assert_eq!(got, want, "{} F16 tail", kern.name());
        }
    }
}
