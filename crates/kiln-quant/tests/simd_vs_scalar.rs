//! Every SIMD implementation this CPU runs against the scalar reference, on random data, for
//! every weight format and a spread of shapes (m = 1, odd m, row counts that are not a multiple
//! of any tile).
//!
//! Tolerance: quantized formats must match bit for bit (the kernels compute the same exact
//! integer block sums and the same float operations in the same order). Float formats (`F32`,
//! `F16`, `BF16`) sum in f32 lanes against an f64 reference: |diff| <= 1e-5 * Σ|w·x| + 1e-30.

mod common;

use common::{random_acts, random_weights, Rng, WEIGHT_TYPES};
use kiln_quant::{dequantize_row, kernels, scalar, GgmlType};

fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

fn check(ty: GgmlType, k: usize, n_rows: usize, m: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let w = random_weights(&mut rng, ty, n_rows, k);
    let (xs, x) = random_acts(&mut rng, ty, m, k);
    let mut want = vec![0.0f32; n_rows * m];
    scalar::gemm(ty, k, n_rows, &w, m, &x, &mut want);

    // Σ|w·x| per output, for the float tolerance.
    let mut wf = vec![0.0f32; n_rows * k];
    if k > 0 {
        for (row, out) in w.chunks_exact(w.len() / n_rows).zip(wf.chunks_exact_mut(k)) {
            dequantize_row(ty, row, out);
        }
    }
    for kern in kernels() {
        let mut got = vec![f32::NAN; n_rows * m];
        kern.gemm(ty, k, n_rows, &w, m, &x, &mut got);
        for r in 0..n_rows {
            for c in 0..m {
                let (g, e) = (got[r * m + c], want[r * m + c]);
                let ctx = format!("{} {ty} k={k} rows={n_rows} m={m} r={r} c={c}", kern.name());
                if is_float(ty) {
                    let mag: f64 = (0..k).map(|i| (wf[r * k + i] as f64 * xs[c * k + i] as f64).abs()).sum();
                    let tol = 1e-5 * mag + 1e-30;
                    assert!(((g - e) as f64).abs() <= tol, "{ctx}: got {g}, want {e}");
                } else {
                    assert_eq!(g.to_bits(), e.to_bits(), "{ctx}: got {g}, want {e}");
                }
            }
        }
        // vec_dot agrees with the matching gemm entry.
        if n_rows > 0 && m > 0 && k > 0 {
            let wr = &w[..w.len() / n_rows];
            let xr = &x[..x.len() / m];
            let d = kern.vec_dot(ty, k, wr, xr);
            let e = want[0];
            if is_float(ty) {
                assert!((d - e).abs() <= 1e-4 * e.abs().max(1.0), "{} vec_dot {ty}", kern.name());
            } else {
                assert_eq!(d.to_bits(), e.to_bits(), "{} vec_dot {ty} k={k}", kern.name());
            }
        }
    }
}

#[test]
fn simd_matches_scalar_all_formats() {
    // (rows, m): m = 1 (row kernels), 2..4 (small tiles), >= 5 (eight-column form with a
    // repeated last column, then the remainders), rows not multiples of any tile.
    let shapes: &[(usize, usize)] = &[
        (1, 1),
        (1, 3),
        (3, 1),
        (7, 1),
        (9, 2),
        (5, 3),
        (8, 4),
        (13, 5),
        (3, 6),
        (17, 7),
        (5, 8),
        (4, 9),
        (6, 12),
        (3, 16),
        (2, 1),
    ];
    for (t, &ty) in WEIGHT_TYPES.iter().enumerate() {
        let bs = if ty.block_size() == 1 { 8 } else { ty.block_size() };
        for blocks in [1usize, 2, 5] {
            let mut k = blocks * bs.max(32);
            if ty.block_size() == 1 && blocks == 5 {
                k += 3; // float rows need not be multiples of 8
            }
            for (s, &(n_rows, m)) in shapes.iter().enumerate() {
                check(ty, k, n_rows, m, (t * 1000 + blocks * 100 + s) as u64);
            }
        }
    }
}

#[test]
fn simd_matches_scalar_model_shapes() {
    // The shapes of the models that matter: SmolLM2 (k = 576, 1536), Gemma-3 (640, 2048).
    for (ty, k) in [
        (GgmlType::Q4_1, 576),
        (GgmlType::Q4_1, 1536),
        (GgmlType::Q8_0, 576),
        (GgmlType::Q5_0, 640),
        (GgmlType::Q8_0, 640),
        (GgmlType::Q4_K, 2048),
        (GgmlType::Q6_K, 2048),
    ] {
        for m in [1, 4, 6] {
            check(ty, k, 19, m, k as u64 + m as u64);
        }
    }
}

#[test]
fn long_rows_use_heap_scratch() {
    // Scale planes beyond the on-stack buffer (4096 floats): two planes of 4 columns for more
    // than 512 blocks of Q4_1, one plane for more than 1024 super-blocks of Q4_K.
    for (ty, k) in [(GgmlType::Q4_1, 32 * 520), (GgmlType::Q5_0, 32 * 1030), (GgmlType::Q4_K, 256 * 1030)] {
        for m in [1, 4, 8] {
            check(ty, k, 3, m, k as u64 + m as u64);
        }
    }
}

#[test]
fn empty_shapes() {
    for ty in WEIGHT_TYPES {
        for kern in kernels() {
            let mut y = vec![1.0f32; 0];
            kern.gemm(ty, 0, 0, &[], 0, &[], &mut y);
            let mut y = vec![1.0f32; 6];
            kern.gemm(ty, 0, 2, &[], 3, &[], &mut y);
            assert!(y.iter().all(|&v| v == 0.0));
        }
    }
}
