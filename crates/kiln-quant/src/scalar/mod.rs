//! The scalar reference implementation: plain Rust, one element at a time, written to be read.
//!
//! Every SIMD path is tested against these functions. For the quantized formats the SIMD
//! kernels compute the same exact integer block sums and then the same float operations in the
//! same order, so their results are bit-identical to these; for `F32`/`F16`/`BF16` weights the
//! SIMD kernels sum in `f32` lanes while this reference sums in `f64`.
//!
//! Float formulas: the dot product of a weight row `w` and an activation row `x` is a sum of
//! one term per block `b` (per super-block for the K formats):
//! * `Q4_0`, `Q5_0`, `Q8_0` (× `Q8_0`): `t_b = (d_w * d_x) * (Σ q_w q_x as f32)`
//! * `Q4_1`, `Q5_1` (× `Q8_1`): `t_b = (d_w * d_x) * (Σ q_w q_x as f32) + m_w * s_x`
//! * `Q3_K`, `Q6_K` (× `Q8_K`): `t_b = (d_w * d_x) * (Σ_i sc_i Σ q_w q_x as f32)`
//! * `Q2_K`, `Q4_K`, `Q5_K` (× `Q8_K`): the same minus the mins' part,
//!   `t_b = (d_w * d_x) * (Σ_i sc_i Σ q_w q_x as f32) - (dmin_w * d_x) * (Σ_i mn_i bsums_i as f32)`
//!
//! where the integer sums are exact `i32` (they cannot overflow for any block contents). The
//! terms are summed in eight partial sums, `s[b % 8] += t_b` in block order, combined as
//! `((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))`: an order every SIMD kernel shape can
//! reproduce exactly.

mod decode;
mod kquant;
mod quant;

use crate::blocks::{bf16_bits_to_f32, f16_at, f32_at, u16_at, QK, QK_K};
use crate::{check_gemm_args, check_row_args, row_bytes, vec_dot_type, GgmlType};

pub use decode::{block32, super_block, Block32, SuperBlock};

/// Dequantizes `dst.len()` elements of type `ty` from `src` (see [`crate::dequantize_row`]).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    check_row_args(ty, src.len(), dst.len());
    match ty {
        GgmlType::F32 => {
            for (o, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32_at(b, 0);
            }
        }
        GgmlType::F16 => {
            for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16_at(b, 0);
            }
        }
        GgmlType::BF16 => {
            for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16_bits_to_f32(u16_at(b, 0));
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 | GgmlType::Q8_1 => {
            for (o, b) in dst.chunks_exact_mut(QK).zip(src.chunks_exact(ty.type_size())) {
                let blk = block32(ty, b);
                for (o, &q) in o.iter_mut().zip(&blk.q) {
                    // ggml: `q * d` (+ `m` as a separate rounding, no fused multiply-add).
                    let v = q as f32 * blk.d;
                    *o = match blk.m {
                        Some(m) => v + m,
                        None => v,
                    };
                }
            }
        }
        GgmlType::Q8_K => {
            for (o, b) in dst.chunks_exact_mut(QK_K).zip(src.chunks_exact(ty.type_size())) {
                let d = f32_at(b, 0);
                for (o, &q) in o.iter_mut().zip(&b[4..4 + QK_K]) {
                    *o = d * (q as i8) as f32;
                }
            }
        }
        _ => {
            for (o, b) in dst.chunks_exact_mut(QK_K).zip(src.chunks_exact(ty.type_size())) {
                let sb = super_block(ty, b);
                for (i, o) in o.chunks_exact_mut(16).enumerate() {
                    // ggml: `dl = d * sc`, `ml = dmin * mn`, then `dl * q - ml`.
                    let dl = sb.d * sb.sc[i] as f32;
                    let ml = sb.dmin * sb.mn[i] as f32;
                    for (o, &q) in o.iter_mut().zip(&sb.q[16 * i..16 * i + 16]) {
                        *o = if sb.has_min { dl * q as f32 - ml } else { dl * q as f32 };
                    }
                }
            }
        }
    }
}

/// Quantizes `src` into `dst` (see [`crate::quantize_row`]).
///
/// Supports the activation types `Q8_0`, `Q8_1`, `Q8_K`, `F16`, `BF16`, `F32`, and, with
/// ggml's reference (model-file) quantizers, `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`. Note that `Q8_0`
/// here is the activation quantizer; [`quantize_weights_row`] has the model-file one.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    check_row_args(ty, dst.len(), src.len());
    match ty {
        GgmlType::Q8_0 => quant::quantize_q8_0(src, dst),
        GgmlType::Q8_1 => quant::quantize_q8_1(src, dst),
        GgmlType::Q8_K => quant::quantize_q8_k(src, dst),
        GgmlType::F32 => quant::quantize_f32(src, dst),
        GgmlType::F16 => quant::quantize_f16(src, dst),
        GgmlType::BF16 => quant::quantize_bf16(src, dst),
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 => quantize_weights_row(ty, src, dst),
        _ => panic!("kiln-quant: quantizing to {ty} is not supported"),
    }
}

/// ggml's reference quantizers, the ones that write model files: `Q4_0`, `Q4_1`, `Q5_0`,
/// `Q5_1`, `Q8_0` (the last rounds ties away from zero, unlike the activation quantizer),
/// `Q2_K`, `Q3_K`, `Q4_K`, `Q5_K`, `Q6_K`.
pub fn quantize_weights_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    check_row_args(ty, dst.len(), src.len());
    match ty {
        GgmlType::Q4_0 => quant::quantize_weights_q4_0(src, dst),
        GgmlType::Q4_1 => quant::quantize_weights_q4_1(src, dst),
        GgmlType::Q5_0 => quant::quantize_weights_q5_0(src, dst),
        GgmlType::Q5_1 => quant::quantize_weights_q5_1(src, dst),
        GgmlType::Q8_0 => quant::quantize_weights_q8_0(src, dst),
        GgmlType::Q2_K => kquant::quantize_weights_q2_k(src, dst),
        GgmlType::Q3_K => kquant::quantize_weights_q3_k(src, dst),
        GgmlType::Q4_K => kquant::quantize_weights_q4_k(src, dst),
        GgmlType::Q5_K => kquant::quantize_weights_q5_k(src, dst),
        GgmlType::Q6_K => kquant::quantize_weights_q6_k(src, dst),
        _ => panic!("kiln-quant: no reference weight quantizer for {ty}"),
    }
}

/// `Σ w[i] x[i]` over `k` elements, `w` of type `ty`, `x` of type `vec_dot_type(ty)`.
pub fn vec_dot(ty: GgmlType, k: usize, w_row: &[u8], x_row: &[u8]) -> f32 {
    check_gemm_args(ty, k, 1, w_row.len(), 1, x_row.len(), 1);
    dot(ty, w_row, x_row)
}

/// `y[r * m + c] = Σ_k W[r][k] X[c][k]` (see [`crate::gemm`]).
pub fn gemm(ty: GgmlType, k: usize, n_rows: usize, w: &[u8], m: usize, x: &[u8], y: &mut [f32]) {
    check_gemm_args(ty, k, n_rows, w.len(), m, x.len(), y.len());
    if k == 0 || n_rows == 0 || m == 0 {
        y.fill(0.0);
        return;
    }
    let w_stride = row_bytes(ty, k);
    let x_stride = row_bytes(vec_dot_type(ty), k);
    for (r, w_row) in w.chunks_exact(w_stride).enumerate() {
        for (c, x_row) in x.chunks_exact(x_stride).enumerate() {
            y[r * m + c] = dot(ty, w_row, x_row);
        }
    }
}

/// The dot product of one row pair whose lengths are already checked.
fn dot(ty: GgmlType, w: &[u8], x: &[u8]) -> f32 {
    match ty {
        GgmlType::F32 => float_dot(w, x, 4, |b| f32_at(b, 0)),
        GgmlType::F16 => float_dot(w, x, 2, |b| f16_at(b, 0)),
        GgmlType::BF16 => float_dot(w, x, 2, |b| bf16_bits_to_f32(u16_at(b, 0))),
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => dot_block32(ty, w, x),
        _ => dot_super_block(ty, w, x),
    }
}

/// Float weights: products of the (exactly widened) elements, summed in `f64`.
fn float_dot(w: &[u8], x: &[u8], width: usize, load: impl Fn(&[u8]) -> f32) -> f32 {
    let sum: f64 = w.chunks_exact(width).zip(x.chunks_exact(width)).map(|(a, b)| load(a) as f64 * load(b) as f64).sum();
    sum as f32
}

/// Sums block terms in the documented order: eight interleaved partial sums, then a tree.
struct PartialSums([f32; 8], usize);

impl PartialSums {
    fn new() -> Self {
        PartialSums([0.0; 8], 0)
    }
    fn add(&mut self, t: f32) {
        self.0[self.1 % 8] += t;
        self.1 += 1;
    }
    fn total(&self) -> f32 {
        let s = &self.0;
        ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
    }
}

fn dot_block32(ty: GgmlType, w: &[u8], x: &[u8]) -> f32 {
    let act = vec_dot_type(ty);
    let mut sums = PartialSums::new();
    for (wb, xb) in w.chunks_exact(ty.type_size()).zip(x.chunks_exact(act.type_size())) {
        let a = block32(ty, wb);
        let b = block32(act, xb);
        let sumi: i32 = a.q.iter().zip(&b.q).map(|(&p, &q)| p as i32 * q as i32).sum();
        let mut t = (a.d * b.d) * sumi as f32;
        if let Some(m) = a.m {
            // Q8_1's `s` (= d * Σ q) carries the min's contribution.
            t += m * f16_at(xb, 2);
        }
        sums.add(t);
    }
    sums.total()
}

fn dot_super_block(ty: GgmlType, w: &[u8], x: &[u8]) -> f32 {
    let mut sums = PartialSums::new();
    for (wb, xb) in w.chunks_exact(ty.type_size()).zip(x.chunks_exact(GgmlType::Q8_K.type_size())) {
        let sb = super_block(ty, wb);
        let dy = f32_at(xb, 0);
        let yq = &xb[4..4 + QK_K];
        let mut sumi = 0i32;
        for i in 0..16 {
            let s: i32 = (16 * i..16 * i + 16).map(|e| sb.q[e] as i32 * yq[e] as i8 as i32).sum();
            sumi += sb.sc[i] as i32 * s;
        }
        let mut t = (sb.d * dy) * sumi as f32;
        if sb.has_min {
            let summ: i32 = (0..16).map(|i| sb.mn[i] as i32 * u16_at(xb, 4 + QK_K + 2 * i) as i16 as i32).sum();
            t -= (sb.dmin * dy) * summ as f32;
        }
        sums.add(t);
    }
    sums.total()
}
