//! ggml's reference (no importance matrix) model-file quantizers for the K formats `Q2_K`,
//! `Q3_K`, `Q4_K`, `Q5_K` and `Q6_K`: the bytes `llama-quantize` writes.
//!
//! Every float operation is the one ggml performs, in its order and in `f32` (ggml-base is
//! built without fused multiply-add or reassociation), so the output is bit-identical. Each
//! super-block is quantized in two passes: first a scale (and min) is fitted to every
//! sub-block, then those scales are themselves quantized to 4, 6 or 8 bits under one `f16`
//! super-block scale, and the values are re-rounded against the scales as stored (a
//! sub-block whose stored scale is zero keeps the levels of its own fit, as in ggml).

use super::quant::signed_absmax;
use crate::blocks::{f16_at, f32_to_f16_bits, q3k_scales, q4k_scales_mins, QK_K};

/// ggml's `nearest_int`: round to nearest, ties to even, by adding `1.5 * 2^23` and reading
/// the mantissa. Kept as that bit trick rather than `round_ties_even` so that out-of-range
/// inputs (which ggml only asserts against in debug builds) give ggml's results too.
fn nearest_int(v: f32) -> i32 {
    let t = v + 12_582_912.0;
    (t.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Below this the largest magnitude of a group counts as zero (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// The largest value, or +0 if none is positive. Not `f32::max`: a zero of either sign must
/// leave the +0 start as is, since its sign would reach the stored `f16` scale.
fn positive_max(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, &s| if s > m { s } else { m })
}

/// The search `make_qkx2_quants` runs for one format: levels `0..=nmax`, candidate inverse
/// scales `(nmax + rmin + 0.1 * is) / (max - min)` for `is` in `0..=nstep`, and the error it
/// minimizes (absolute or squared).
struct Search {
    nmax: i32,
    rmin: f32,
    nstep: i32,
    abs_error: bool,
}

const Q2_K_SEARCH: Search = Search { nmax: 3, rmin: -0.5, nstep: 15, abs_error: true };
const Q4_K_SEARCH: Search = Search { nmax: 15, rmin: -1.0, nstep: 20, abs_error: false };
const Q5_K_SEARCH: Search = Search { nmax: 31, rmin: -0.5, nstep: 15, abs_error: false };

/// ggml's `make_qkx2_quants`: fits `x ≈ scale * l - min` with `l` in `0..=nmax`, minimizing
/// the `weights`-weighted error over the candidate scales of `search`, each refined by a
/// weighted least-squares fit of scale and min. Writes the levels to `l_out` and returns
/// `(scale, min)` where `min >= 0` is subtracted.
fn fit_scale_min(x: &[f32], weights: &[f32], search: &Search, l_out: &mut [u8]) -> (f32, f32) {
    let nmax = search.nmax;
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    // Zero must be representable: a group of positive values still gets a min of 0.
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let levels = |iscale: f32, min: f32, out: &mut [u8]| {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
        }
    };
    let error = |scale: f32, min: f32, l: &[u8]| {
        let mut e = 0.0f32;
        for ((&q, &v), &w) in l.iter().zip(x).zip(weights) {
            let diff = scale * q as f32 + min - v;
            e += w * if search.abs_error { diff.abs() } else { diff * diff };
        }
        e
    };
    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    levels(iscale, min, l_out);
    let mut best = error(scale, min, l_out);
    let mut aux = [0u8; 32];
    let aux = &mut aux[..x.len()];
    for is in 0..=search.nstep {
        let iscale = (search.rmin + 0.1 * is as f32 + nmax as f32) / (max - min);
        levels(iscale, min, aux);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((&q, &v), &w) in aux.iter().zip(x).zip(weights) {
            let l = q as f32;
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let e = error(this_scale, this_min, aux);
            if e < best {
                l_out.copy_from_slice(aux);
                best = e;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `make_qx_quants` with `rmse_type = 1` (weights `x²`), as `Q6_K` uses it: a
/// symmetric scale for `l` in `-nmax..nmax`, the best of 19 candidate scales around
/// `nmax / max` each refined by least squares. Writes `l + nmax` to `l_out`; returns the scale.
fn fit_scale_symmetric(x: &[f32], nmax: i32, l_out: &mut [u8]) -> f32 {
    let max = signed_absmax(x);
    if max.abs() < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let level = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    // Σ w x l and Σ w l² with w = x².
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = level(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let store = |iscale: f32, out: &mut [u8]| {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (level(iscale, v) + nmax) as u8;
        }
    };
    let iscale = -(nmax as f32) / max;
    store(iscale, l_out);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(iscale, l_out);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` as `Q3_K` uses it (`nmax = 4`, with its refinement): start from
/// `l = round(-nmax * x / max)` in `-nmax..nmax`, then up to five sweeps moving single levels
/// wherever that raises the `x²`-weighted fit `(Σ w x l)² / Σ w l²`. Writes `l + nmax`;
/// returns the least-squares scale.
fn fit_scale_iterative(x: &[f32], nmax: i32, l_out: &mut [u8]) -> f32 {
    let max = signed_absmax(x);
    if max.abs() < GROUP_MAX_EPS {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut l = [0i32; 16];
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (li, &v) in l.iter_mut().zip(x) {
        *li = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        let (w, q) = (v * v, *li as f32);
        sumlx += w * v * q;
        suml2 += w * q * q;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (li, &v) in l.iter_mut().zip(x) {
            let w = v * v;
            let q = *li as f32;
            let mut slx = sumlx - w * v * q;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * q * q;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *li {
                    let nq = new_l as f32;
                    slx += w * v * nq;
                    sl2 += w * nq * nq;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for (o, &li) in l_out.iter_mut().zip(&l) {
        *o = (li + nmax) as u8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Packs 256 2-bit values: byte `32h + i` holds elements `128h + i + 32c` at bits `2c`.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for h in 0..2 {
        for i in 0..32 {
            let e = 128 * h + i;
            qs[32 * h + i] = (l[e] & 3) | ((l[e + 32] & 3) << 2) | ((l[e + 64] & 3) << 4) | ((l[e + 96] & 3) << 6);
        }
    }
}

/// `Q2_K`: sixteen 16-element sub-blocks, each with a scale and a min quantized to 4 bits
/// against `d` and `dmin`; levels `0..=3`, fitted by absolute error weighted by `|x|`.
fn q2_k_block(x: &[f32], out: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut mins = [0.0f32; 16];
    for (j, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        let mut weights = [0.0f32; 16];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        (scales[j], mins[j]) = fit_scale_min(xs, &weights, &Q2_K_SEARCH, ls);
    }
    let (max_scale, max_min) = (positive_max(&scales), positive_max(&mins));
    out.fill(0);
    // Scales in the low nibbles, mins in the high ones; `as u8` and the shift wrap as ggml's
    // stores into bytes do.
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for (o, &sc) in out[..16].iter_mut().zip(&scales) {
            *o = nearest_int(iscale * sc) as u8;
        }
        out[80..82].copy_from_slice(&f32_to_f16_bits(max_scale / 15.0).to_le_bytes());
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for (o, &mn) in out[..16].iter_mut().zip(&mins) {
            *o |= (nearest_int(iscale * mn) << 4) as u8;
        }
        out[82..84].copy_from_slice(&f32_to_f16_bits(max_min / 15.0).to_le_bytes());
    }
    let (d, dmin) = (f16_at(out, 80), f16_at(out, 82));
    for (j, xs) in x.chunks_exact(16).enumerate() {
        let dl = d * (out[j] & 0xf) as f32;
        if dl == 0.0 {
            continue;
        }
        let ml = dmin * (out[j] >> 4) as f32;
        for (o, &v) in l[16 * j..16 * j + 16].iter_mut().zip(xs) {
            *o = nearest_int((v + ml) / dl).clamp(0, 3) as u8;
        }
    }
    pack_2bit(&l, &mut out[16..80]);
}

/// `Q3_K`: sixteen 16-element sub-blocks with signed scales quantized to 6 bits against `d`;
/// levels `-4..=3` stored as 2 low bits plus a high bit in `hmask`.
fn q3_k_block(x: &[f32], out: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    for (j, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        scales[j] = fit_scale_iterative(xs, 4, ls);
    }
    let max_scale = signed_absmax(&scales);
    out.fill(0);
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        let packed = &mut out[96..108];
        for (j, &sc) in scales.iter().enumerate() {
            // ggml narrows to i8 before clamping.
            let q = ((nearest_int(iscale * sc) as i8).clamp(-32, 31) + 32) as u8;
            packed[j % 8] |= (q & 0xf) << (4 * (j / 8));
            packed[8 + j % 4] |= (q >> 4) << (2 * (j / 4));
        }
        out[108..110].copy_from_slice(&f32_to_f16_bits(1.0 / iscale).to_le_bytes());
    }
    let d = f16_at(out, 108);
    let sc = q3k_scales(&out[96..108]);
    for (j, xs) in x.chunks_exact(16).enumerate() {
        let dl = d * sc[j] as f32;
        if dl == 0.0 {
            continue;
        }
        for (o, &v) in l[16 * j..16 * j + 16].iter_mut().zip(xs) {
            *o = (nearest_int(v / dl).clamp(-4, 3) + 4) as u8;
        }
    }
    // High bit of element e at bit e / 32 of hmask[e % 32].
    for (e, q) in l.iter_mut().enumerate() {
        if *q > 3 {
            out[e % 32] |= 1 << (e / 32);
            *q -= 4;
        }
    }
    pack_2bit(&l, &mut out[32..96]);
}

/// `Q4_K` (`nmax = 15`) and `Q5_K` (`nmax = 31`): eight 32-element sub-blocks, each with a
/// scale and a min, both quantized to 6 bits against the super-block's `d` and `dmin`.
/// Returns the 256 levels; writes `d`, `dmin` and the packed scales to `head[..16]`.
fn scale_min_super_block(x: &[f32], search: &Search, head: &mut [u8]) -> [u8; QK_K] {
    let nmax = search.nmax;
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    for (j, (xs, ls)) in x.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let sum_x2 = xs.iter().fold(0.0f32, |s, &v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        (scales[j], mins[j]) = fit_scale_min(xs, &weights, search, ls);
    }
    let (max_scale, max_min) = (positive_max(&scales), positive_max(&mins));
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let packed = &mut head[4..16];
    packed.fill(0);
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    head[..2].copy_from_slice(&f32_to_f16_bits(max_scale / 63.0).to_le_bytes());
    head[2..4].copy_from_slice(&f32_to_f16_bits(max_min / 63.0).to_le_bytes());
    let (d, dmin) = (f16_at(head, 0), f16_at(head, 2));
    let (sc, mn) = q4k_scales_mins(&head[4..16]);
    for j in 0..8 {
        let dl = d * sc[j] as f32;
        if dl == 0.0 {
            continue;
        }
        let ml = dmin * mn[j] as f32;
        for (o, &v) in l[32 * j..32 * j + 32].iter_mut().zip(&x[32 * j..32 * j + 32]) {
            *o = nearest_int((v + ml) / dl).clamp(0, nmax) as u8;
        }
    }
    l
}

fn q4_k_block(x: &[f32], out: &mut [u8]) {
    let l = scale_min_super_block(x, &Q4_K_SEARCH, out);
    // Chunks 2c and 2c + 1 share 32 bytes: low and high nibbles.
    for (c, qs) in out[16..144].chunks_exact_mut(32).enumerate() {
        for (i, q) in qs.iter_mut().enumerate() {
            *q = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
        }
    }
}

fn q5_k_block(x: &[f32], out: &mut [u8]) {
    let l = scale_min_super_block(x, &Q5_K_SEARCH, out);
    let (qh, qs) = out[16..176].split_at_mut(32);
    qh.fill(0);
    for (c, qs) in qs.chunks_exact_mut(32).enumerate() {
        for (i, q) in qs.iter_mut().enumerate() {
            let (lo, hi) = (l[64 * c + i], l[64 * c + 32 + i]);
            *q = (lo & 0xf) | ((hi & 0xf) << 4);
            // Fifth bits: chunk k of the super-block at bit k of qh.
            qh[i] |= ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
        }
    }
}

/// `Q6_K`: sixteen 16-element sub-blocks with signed scales, quantized to `i8` against the
/// super-block's `d` (the sub-block scale of largest magnitude maps to -128).
fn q6_k_block(x: &[f32], out: &mut [u8]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    for (ib, (xs, ls)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        scales[ib] = fit_scale_symmetric(xs, 32, ls);
    }
    let max_scale = signed_absmax(&scales);
    out.fill(0);
    if max_scale.abs() < GROUP_MAX_EPS {
        return;
    }
    let iscale = -128.0 / max_scale;
    out[208..210].copy_from_slice(&f32_to_f16_bits(1.0 / iscale).to_le_bytes());
    let d = f16_at(out, 208);
    for (ib, xs) in x.chunks_exact(16).enumerate() {
        let sc = nearest_int(iscale * scales[ib]).min(127) as i8;
        out[192 + ib] = sc as u8;
        let dl = d * sc as f32;
        if dl == 0.0 {
            continue;
        }
        for (o, &v) in l[16 * ib..16 * ib + 16].iter_mut().zip(xs) {
            *o = (nearest_int(v / dl).clamp(-32, 31) + 32) as u8;
        }
    }
    // Per half of 128: four 32-element chunks; low nibbles of chunks 0/2 and 1/3 share
    // 32 bytes each, the two high bits of all four share one byte.
    let (ql, rest) = out.split_at_mut(128);
    let qh = &mut rest[..64];
    for h in 0..2 {
        let lh = &l[128 * h..128 * h + 128];
        for i in 0..32 {
            let q = [lh[i], lh[i + 32], lh[i + 64], lh[i + 96]];
            ql[64 * h + i] = (q[0] & 0xf) | ((q[2] & 0xf) << 4);
            ql[64 * h + 32 + i] = (q[1] & 0xf) | ((q[3] & 0xf) << 4);
            qh[32 * h + i] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
}

pub fn quantize_weights_q2_k(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(84)) {
        q2_k_block(x, o);
    }
}

pub fn quantize_weights_q3_k(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(110)) {
        q3_k_block(x, o);
    }
}

pub fn quantize_weights_q4_k(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(144)) {
        q4_k_block(x, o);
    }
}

pub fn quantize_weights_q5_k(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(176)) {
        q5_k_block(x, o);
    }
}

pub fn quantize_weights_q6_k(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(210)) {
        q6_k_block(x, o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        for (v, want) in [(0.5, 0), (1.5, 2), (2.5, 2), (-0.5, 0), (-1.5, -2), (3.49, 3), (-7.51, -8)] {
            assert_eq!(nearest_int(v), want, "{v}");
        }
    }
}
