//! AVX2 activation quantizers, bit-identical to the scalar ones (which follow llama.cpp's x86
//! backend): the same maximum, the same scalar divisions, products rounded to nearest with ties
//! to even (`vroundps`/`vcvtps2dq` in the default rounding mode), and exact integer sums.

use std::arch::x86_64::*;

use crate::blocks::{f32_to_f16_bits, QK, QK_K};
use crate::GgmlType;

/// Whether [`quantize_row`] handles `ty`.
pub fn handles(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8_K | GgmlType::F16)
}

/// Quantizes `src` to `ty` (one of [`handles`]) into `dst`, whose length is already checked.
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    match ty {
        GgmlType::Q8_0 => {
            for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(34)) {
                q8_block(x, o, false);
            }
        }
        GgmlType::Q8_1 => {
            for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(36)) {
                q8_block(x, o, true);
            }
        }
        GgmlType::Q8_K => {
            for (x, o) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(292)) {
                q8k_block(x, o);
            }
        }
        GgmlType::F16 => {
            let main = src.len() / 8 * 8;
            for (x, o) in src[..main].chunks_exact(8).zip(dst.chunks_exact_mut(16)) {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(x.as_ptr()));
                _mm_storeu_si128(o.as_mut_ptr() as *mut __m128i, h);
            }
            for (x, o) in src[main..].iter().zip(dst[2 * main..].chunks_exact_mut(2)) {
                o.copy_from_slice(&f32_to_f16_bits(*x).to_le_bytes());
            }
        }
        _ => unreachable!("{ty} has no SIMD quantizer"),
    }
}

/// Largest `|x|` over `n` groups of eight floats at `p`.
#[inline(always)]
unsafe fn abs_max(p: *const f32, n: usize) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    let mut m = _mm256_setzero_ps();
    for i in 0..n {
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * i))));
    }
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)))
}

/// Eight floats times `mul`, rounded to nearest even, as `i32`.
#[inline(always)]
unsafe fn scaled_ints(p: *const f32, mul: __m256) -> __m256i {
    _mm256_cvtps_epi32(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        _mm256_loadu_ps(p),
        mul,
    )))
}

/// Packs four vectors of eight `i32` (in range) into 32 `i8` in order.
#[inline(always)]
unsafe fn pack32(i: [__m256i; 4]) -> __m256i {
    let a = _mm256_packs_epi32(i[0], i[1]);
    let b = _mm256_packs_epi32(i[2], i[3]);
    // The packs work per 128-bit lane; this restores element order.
    _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Sum of the eight `i32` lanes.
#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s)))
}

#[inline(always)]
unsafe fn q8_block(x: &[f32], out: &mut [u8], with_sum: bool) {
    let p = x.as_ptr();
    let amax = abs_max(p, 4);
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mul = _mm256_set1_ps(id);
    // (No closures here: they would not inherit the target features.)
    let i = [scaled_ints(p, mul), scaled_ints(p.add(8), mul), scaled_ints(p.add(16), mul), scaled_ints(p.add(24), mul)];
    let qs_at = if with_sum { 4 } else { 2 };
    _mm256_storeu_si256(out.as_mut_ptr().add(qs_at) as *mut __m256i, pack32(i));
    out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    if with_sum {
        let sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3])));
        out[2..4].copy_from_slice(&f32_to_f16_bits(d * sum as f32).to_le_bytes());
    }
}

#[inline(always)]
unsafe fn q8k_block(x: &[f32], out: &mut [u8]) {
    let p = x.as_ptr();
    let amax = abs_max(p, QK_K / 8);
    if amax == 0.0 {
        out.fill(0);
        return;
    }
    // The scale's sign comes from the first element of largest magnitude.
    let max = *x.iter().find(|v| v.abs() == amax).unwrap_or(&amax);
    let iscale = -127.0 / max;
    let mul = _mm256_set1_ps(iscale);
    let cap = _mm256_set1_epi32(127);
    let ones = _mm256_set1_epi16(1);
    for c in 0..QK_K / 32 {
        let at = p.add(32 * c);
        let i = [
            _mm256_min_epi32(scaled_ints(at, mul), cap),
            _mm256_min_epi32(scaled_ints(at.add(8), mul), cap),
            _mm256_min_epi32(scaled_ints(at.add(16), mul), cap),
            _mm256_min_epi32(scaled_ints(at.add(24), mul), cap),
        ];
        let q = pack32(i);
        _mm256_storeu_si256(out.as_mut_ptr().add(4 + 32 * c) as *mut __m256i, q);
        // bsums of the two 16-element halves: sign-extend to i16, pair sums, then per 8 i32.
        let w = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)), ones);
        let w2 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(q)), ones);
        for (h, v) in [w, w2].into_iter().enumerate() {
            let s = hsum_i32(v) as i16;
            let at = 4 + QK_K + 2 * (2 * c + h);
            out[at..at + 2].copy_from_slice(&s.to_le_bytes());
        }
    }
    out[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}
