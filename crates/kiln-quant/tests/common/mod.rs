//! Shared test helpers: a seeded generator and random rows of every format.
#![allow(dead_code)]

use kiln_quant::blocks::{f32_to_bf16_bits, f32_to_f16_bits};
use kiln_quant::{quantize_row, row_bytes, vec_dot_type, GgmlType};

/// SplitMix64: small, seedable, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-a, a).
    pub fn sym(&mut self, a: f32) -> f32 {
        (2.0 * self.unit() - 1.0) * a
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    /// Roughly normal (sum of uniforms), with occasional outliers like real activations.
    pub fn activation(&mut self) -> f32 {
        let v: f32 = (0..4).map(|_| self.sym(1.0)).sum();
        if self.next_u64().is_multiple_of(64) {
            v * 20.0
        } else {
            v
        }
    }
}

pub const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Where each block of `ty` keeps its f16 scale fields (d, and m/dmin when present).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// `rows` random rows of `k` weights of type `ty`: every quant bit random, the f16 scales
/// random but sane (so no inf/NaN), float types random values.
pub fn random_weights(rng: &mut Rng, ty: GgmlType, rows: usize, k: usize) -> Vec<u8> {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            let vals: Vec<f32> = (0..rows * k).map(|_| rng.sym(1.0)).collect();
            let mut out = Vec::with_capacity(rows * k * 4);
            for v in vals {
                match ty {
                    GgmlType::F32 => out.extend_from_slice(&v.to_le_bytes()),
                    GgmlType::F16 => out.extend_from_slice(&f32_to_f16_bits(v).to_le_bytes()),
                    _ => out.extend_from_slice(&f32_to_bf16_bits(v).to_le_bytes()),
                }
            }
            out
        }
        _ => {
            let mut out = rng.bytes(rows * row_bytes(ty, k));
            for block in out.chunks_exact_mut(ty.type_size()) {
                for &at in f16_fields(ty) {
                    let v = rng.sym(0.05);
                    block[at..at + 2].copy_from_slice(&f32_to_f16_bits(v).to_le_bytes());
                }
            }
            out
        }
    }
}

/// `m` random activation rows of `k` elements, as f32 and quantized for weights of type `ty`.
pub fn random_acts(rng: &mut Rng, ty: GgmlType, m: usize, k: usize) -> (Vec<f32>, Vec<u8>) {
    let xs: Vec<f32> = (0..m * k).map(|_| rng.activation()).collect();
    let act = vec_dot_type(ty);
    let rb = row_bytes(act, k);
    let mut q = vec![0u8; m * rb];
    for (src, dst) in xs.chunks_exact(k.max(1)).zip(q.chunks_exact_mut(rb.max(1))) {
        quantize_row(act, src, dst);
    }
    (xs, q)
}
