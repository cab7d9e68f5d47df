//! Row quantizers: the activation formats (exactly as llama.cpp's x86 CPU backend quantizes
//! matmul inputs) and ggml's reference quantizers for the simple weight formats.

use crate::blocks::{f32_to_bf16_bits, f32_to_f16_bits, QK, QK_K};

/// Activation `Q8_0`/`Q8_1` block as llama.cpp's AVX2 `quantize_row_q8_0`/`_q8_1` writes it
/// (the path its x86 builds take, and so the numbers its dot products see):
/// `amax = max |x|`, `d = amax / 127`, `id = 127 / amax` (not `1 / d`), `q = round(x * id)`
/// with ties to even. `Q8_1` also stores `s = d * Σ q` (with `d` before its f16 rounding).
fn q8_block(x: &[f32], out: &mut [u8], with_sum: bool) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let qs_at = if with_sum { 4 } else { 2 };
    let mut sum = 0i32;
    for (o, &v) in out[qs_at..qs_at + QK].iter_mut().zip(x) {
        let q = (v * id).round_ties_even() as i32;
        sum += q;
        *o = q as i8 as u8;
    }
    out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    if with_sum {
        out[2..4].copy_from_slice(&f32_to_f16_bits(d * sum as f32).to_le_bytes());
    }
}

/// `Q8_K` block as ggml's `quantize_row_q8_K_ref` (which the x86 backend uses as is):
/// scale by `-127 / max` where `max` is the first element of largest magnitude, round to
/// nearest with ties to even, clamp at 127, `d = 1 / iscale`; `bsums` are the sums of each 16.
/// An all-zero block stores `d = 0` and zero quants (and zero `bsums`).
fn q8k_block(x: &[f32], out: &mut [u8]) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    out.fill(0);
    if amax == 0.0 {
        return;
    }
    let iscale = -127.0 / max;
    let mut q = [0i8; QK_K];
    for (o, &v) in q.iter_mut().zip(x) {
        *o = ((iscale * v).round_ties_even() as i32).min(127) as i8;
    }
    out[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    for (o, &v) in out[4..4 + QK_K].iter_mut().zip(&q) {
        *o = v as u8;
    }
    for (i, chunk) in q.chunks_exact(16).enumerate() {
        let s: i16 = chunk.iter().map(|&v| v as i16).sum();
        out[4 + QK_K + 2 * i..4 + QK_K + 2 * i + 2].copy_from_slice(&s.to_le_bytes());
    }
}

pub fn quantize_q8_0(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(34)) {
        q8_block(x, o, false);
    }
}

pub fn quantize_q8_1(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(36)) {
        q8_block(x, o, true);
    }
}

pub fn quantize_q8_k(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(292)) {
        q8k_block(x, o);
    }
}

pub fn quantize_f32(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.iter().zip(dst.chunks_exact_mut(4)) {
        o.copy_from_slice(&x.to_le_bytes());
    }
}

pub fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.iter().zip(dst.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_f16_bits(*x).to_le_bytes());
    }
}

pub fn quantize_bf16(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.iter().zip(dst.chunks_exact_mut(2)) {
        o.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes());
    }
}

/// The value of largest magnitude in `x` (the first one on ties), as ggml's reference
/// quantizers pick it (0 for an empty or all-zero `x`).
pub(super) fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Packs 32 values of up to 5 bits: low nibbles into 16 bytes (element `j` low, `j + 16`
/// high), bit 4 of element `j` into bit `j` of the returned `qh`.
fn pack_nibbles(q: &[u8; QK], qs: &mut [u8]) -> u32 {
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        qs[j] = (q[j] & 0xf) | ((q[j + QK / 2] & 0xf) << 4);
    }
    for (j, &v) in q.iter().enumerate() {
        qh |= (((v >> 4) & 1) as u32) << j;
    }
    qh
}

/// ggml's reference (model-file) quantizer for the symmetric formats `Q4_0` (`bits = 4`) and
/// `Q5_0` (`bits = 5`): `d = max / -2^(bits-1)`, `q = min(2^bits - 1, trunc(x / d + 2^(bits-1) + 0.5))`.
fn ref_symmetric_block(x: &[f32], out: &mut [u8], bits: u32) {
    let half = (1u32 << (bits - 1)) as f32;
    let d = signed_absmax(x) / -half;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0u8; QK];
    for (o, &v) in q.iter_mut().zip(x) {
        *o = ((v * id + (half + 0.5)) as i8).min(((1 << bits) - 1) as i8) as u8;
    }
    out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    if bits == 4 {
        pack_nibbles(&q, &mut out[2..18]);
    } else {
        let qh = pack_nibbles(&q, &mut out[6..22]);
        out[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

/// ggml's reference quantizer for the formats with a min, `Q4_1` and `Q5_1`:
/// `d = (max - min) / (2^bits - 1)`, `q = trunc((x - min) / d + 0.5)`.
fn ref_affine_block(x: &[f32], out: &mut [u8], bits: u32) {
    let min = x.iter().fold(f32::MAX, |a, &v| if v < a { v } else { a });
    let max = x.iter().fold(-f32::MAX, |a, &v| if v > a { v } else { a });
    let top = ((1u32 << bits) - 1) as f32;
    let d = (max - min) / top;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0u8; QK];
    for (o, &v) in q.iter_mut().zip(x) {
        *o = (((v - min) * id + 0.5) as u8).min(top as u8);
    }
    out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    out[2..4].copy_from_slice(&f32_to_f16_bits(min).to_le_bytes());
    if bits == 4 {
        pack_nibbles(&q, &mut out[4..20]);
    } else {
        let qh = pack_nibbles(&q, &mut out[8..24]);
        out[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

/// ggml's `quantize_row_q8_0_ref` (model files): `d = amax / 127`, `q = roundf(x / d)` with
/// ties away from zero. Differs from the activation quantizer in rare last-bit cases.
fn ref_q8_0_block(x: &[f32], out: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    for (o, &v) in out[2..34].iter_mut().zip(x) {
        *o = (v * id).round() as i8 as u8;
    }
}

pub fn quantize_weights_q4_0(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(18)) {
        ref_symmetric_block(x, o, 4);
    }
}

pub fn quantize_weights_q5_0(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(22)) {
        ref_symmetric_block(x, o, 5);
    }
}

pub fn quantize_weights_q4_1(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(20)) {
        ref_affine_block(x, o, 4);
    }
}

pub fn quantize_weights_q5_1(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(24)) {
        ref_affine_block(x, o, 5);
    }
}

pub fn quantize_weights_q8_0(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(34)) {
        ref_q8_0_block(x, o);
    }
}
