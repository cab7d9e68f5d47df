//! The sixteen-column kernel for the K super-block formats on AVX-512 VNNI (`m >= 12`):
//! activation columns in the lanes of 512-bit vectors, as in [`super::wide`].
//!
//! Repacked layout per super-block ([`BLOCK_BYTES`]): for chunk `j` (32 elements) and 4-element
//! group `g`, a 64-byte vector at `64 (8j + g)` holding bytes `32j + 4g..+4` of the sixteen
//! columns; then eight vectors of `bsums` pairs (lane `c`: `bsums[2i]`, `bsums[2i + 1]` of
//! column `c` as two `i16`) at `4096 + 64i`; then the sixteen `f32` activation `d` at 4608.
//!
//! Per weight super-block and chunk, eight broadcast `vpdpbusd` give every column's exact code
//! sum over the chunk (over each 16-element half, for formats with 16-element sub-blocks), one
//! integer multiply applies the sub-block scale, and eight `vpdpwssd` against the `bsums` pairs
//! give the bias. The float term is the scalar reference's, lane-wise.

use std::arch::x86_64::*;

use super::formats::FmtK;
use super::mem::{load256, read_f32, read_u16, read_u32};
use crate::blocks::{off, size};

/// Bytes of repacked activations per super-block.
pub const BLOCK_BYTES: usize = 4096 + 512 + 64;

/// Repacks super-blocks `0..blocks` of the sixteen `Q8_K` rows `x` into `out`
/// (`blocks * BLOCK_BYTES` bytes).
///
/// # Safety
/// `x[c]` point to whole `Q8_K` rows of `blocks` super-blocks, `out` to writable memory of the
/// stated size, and the CPU supports AVX2.
#[inline(always)]
pub unsafe fn repack(blocks: usize, x: &[*const u8; 16], out: *mut u8) {
    for s in 0..blocks {
        let dst = out.add(s * BLOCK_BYTES);
        for h in 0..2 {
            let cols: [*const u8; 8] = std::array::from_fn(|c| x[8 * h + c].add(s * size::Q8_K));
            let mut v = [_mm256_setzero_si256(); 8];
            for j in 0..8 {
                for c in 0..8 {
                    v[c] = load256(cols[c].add(off::Q8_K_QS + 32 * j));
                }
                super::wide::transpose8(&mut v);
                for (g, vg) in v.iter().enumerate() {
                    _mm256_storeu_si256(dst.add(64 * (8 * j + g) + 32 * h) as *mut __m256i, *vg);
                }
            }
            for c in 0..8 {
                v[c] = load256(cols[c].add(off::Q8_K_BSUMS));
            }
            super::wide::transpose8(&mut v);
            for (i, vi) in v.iter().enumerate() {
                _mm256_storeu_si256(dst.add(4096 + 64 * i + 32 * h) as *mut __m256i, *vi);
            }
            for (c, &col) in cols.iter().enumerate() {
                (dst.add(4608 + 4 * (8 * h + c)) as *mut f32).write_unaligned(read_f32(col));
            }
        }
    }
}

/// The term vector (lanes are the sixteen columns) of one weight super-block against the
/// repacked activation super-block `xb`.
///
/// # Safety
/// `w` points to a whole weight super-block, `xb` to one written by [`repack`], and the CPU
/// supports AVX-512 F/BW/VNNI and AVX2.
#[inline(always)]
pub unsafe fn block_term<F: FmtK>(w: *const u8, xb: *const u8) -> __m512 {
    let sc = F::scales(w);
    let mut scales = [0i16; 16];
    let mut bias = [0u8; 32];
    _mm256_storeu_si256(scales.as_mut_ptr() as *mut __m256i, sc.scales);
    _mm256_storeu_si256(bias.as_mut_ptr() as *mut __m256i, sc.bias);
    let mut sumi = _mm512_setzero_si512();
    for j in 0..8 {
        let mut codes = [0u8; 32];
        _mm256_storeu_si256(codes.as_mut_ptr() as *mut __m256i, F::codes(w, j));
        // Exact code sums of each 16-element half of the chunk, per column.
        let mut half = [_mm512_setzero_si512(); 2];
        for g in 0..8 {
            let wg = _mm512_set1_epi32(read_u32(codes.as_ptr().add(4 * g)) as i32);
            let y = _mm512_loadu_si512(xb.add(64 * (8 * j + g)) as *const _);
            half[g / 4] = _mm512_dpbusd_epi32(half[g / 4], wg, y);
        }
        let (s0, s1) = (scales[2 * j] as i32, scales[2 * j + 1] as i32);
        if F::SUB16 {
            sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(half[0], _mm512_set1_epi32(s0)));
            sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(half[1], _mm512_set1_epi32(s1)));
        } else {
            let both = _mm512_add_epi32(half[0], half[1]);
            sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(both, _mm512_set1_epi32(s0)));
        }
    }
    // Σ coef_i · bsums_i per column, two sub-blocks per vpdpwssd.
    let mut summ = _mm512_setzero_si512();
    for i in 0..8 {
        let coef = _mm512_set1_epi32(read_u32(bias.as_ptr().add(4 * i)) as i32);
        summ = _mm512_dpwssd_epi32(summ, coef, _mm512_loadu_si512(xb.add(4096 + 64 * i) as *const _));
    }
    if !F::HAS_MIN {
        sumi = _mm512_sub_epi32(sumi, summ);
    }
    let dx = _mm512_loadu_ps(xb.add(4608) as *const f32);
    let dw = _mm512_cvtph_ps(_mm256_set1_epi16(read_u16(w.add(F::D_AT)) as i16));
    let mut t = _mm512_mul_ps(_mm512_mul_ps(dw, dx), _mm512_cvtepi32_ps(sumi));
    if F::HAS_MIN {
        let dmin = _mm512_cvtph_ps(_mm256_set1_epi16(read_u16(w.add(F::D_AT + 2)) as i16));
        t = _mm512_sub_ps(t, _mm512_mul_ps(_mm512_mul_ps(dmin, dx), _mm512_cvtepi32_ps(summ)));
    }
    t
}
