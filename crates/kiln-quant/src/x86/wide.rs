//! The many-column kernels for the 32-element block formats (`m >= 5`): activation columns in
//! vector lanes.
//!
//! Each group of `N` activation rows (`N = 8` on 256-bit vectors, `N = 16` on 512-bit ones) is
//! repacked once per call so that, for block `b` and 4-element group `g`, one vector holds
//! bytes `4g..4g+4` of all `N` columns (lane `c` for column `c`). A weight row's block is
//! decoded once, its eight 4-byte groups are broadcast, and eight `vpdpbusd` (or their AVX2
//! equivalent) leave the exact integer block sum of every column in its lane: no horizontal
//! reduction per block, which is what the smaller tiles spend most of their time on. The float
//! terms are then the scalar reference's, lane-wise (lanes are columns), into partial sum
//! `b % 8`, so results stay bit-identical.
//!
//! Repacked layout, per block ([`block_bytes`]`(N)` bytes): the eight group vectors (`4N` bytes
//! each), then `N` `f32` activation `d`, `N` `f32` `s` (`Q8_1`), and `N` `i32` corrections
//! `-OFFSET * Σ y` (for code encodings with an offset). Columns are handled eight at a time
//! (one 256-bit half of a group vector, of each plane).

use std::arch::x86_64::*;

use super::formats::Fmt32;
use super::isa::Isa;
use super::mem::{load256, read_u16, read_u32};

/// Bytes of repacked activations per block for `n` columns.
pub const fn block_bytes(n: usize) -> usize {
    32 * n + 3 * 4 * n
}

/// Transposes eight vectors of eight `i32` (row `i` in `v[i]`) in place.
#[inline(always)]
pub(crate) unsafe fn transpose8(v: &mut [__m256i; 8]) {
    let t0 = _mm256_unpacklo_epi32(v[0], v[1]);
    let t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    let t2 = _mm256_unpacklo_epi32(v[2], v[3]);
    let t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    let t4 = _mm256_unpacklo_epi32(v[4], v[5]);
    let t5 = _mm256_unpackhi_epi32(v[4], v[5]);
    let t6 = _mm256_unpacklo_epi32(v[6], v[7]);
    let t7 = _mm256_unpackhi_epi32(v[6], v[7]);
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    v[0] = _mm256_permute2x128_si256::<0x20>(u0, u4);
    v[1] = _mm256_permute2x128_si256::<0x20>(u1, u5);
    v[2] = _mm256_permute2x128_si256::<0x20>(u2, u6);
    v[3] = _mm256_permute2x128_si256::<0x20>(u3, u7);
    v[4] = _mm256_permute2x128_si256::<0x31>(u0, u4);
    v[5] = _mm256_permute2x128_si256::<0x31>(u1, u5);
    v[6] = _mm256_permute2x128_si256::<0x31>(u2, u6);
    v[7] = _mm256_permute2x128_si256::<0x31>(u3, u7);
}

/// One `f16` widened to `f32` and broadcast.
#[inline(always)]
unsafe fn f16_splat(h: u16) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(h as i16))
}

/// Repacks blocks `0..blocks` of the `N` activation rows `x` into `out`
/// (`blocks * block_bytes(N)` bytes).
///
/// # Safety
/// `x[c]` point to whole activation rows of `blocks` blocks, `out` to writable memory of the
/// stated size, and the CPU supports AVX2 and F16C.
#[inline(always)]
pub unsafe fn repack<I: Isa, F: Fmt32, const N: usize>(blocks: usize, x: &[*const u8; N], out: *mut u8) {
    for b in 0..blocks {
        let dst = out.add(b * block_bytes(N));
        for h in 0..N / 8 {
            let mut v = [_mm256_setzero_si256(); 8];
            let mut d = [[0u16; 8]; 2];
            for c in 0..8 {
                let blk = x[8 * h + c].add(b * F::ACT_BYTES);
                v[c] = load256(blk.add(F::ACT_QS));
                d[0][c] = read_u16(blk);
                d[1][c] = read_u16(blk.add(2));
            }
            if I::uses_offset::<F>() {
                // -OFFSET * Σ y per column (exact: |Σ y| <= 32 * 127).
                let ones = _mm256_set1_epi8(1);
                let mut s = [_mm256_setzero_si256(); 8];
                for c in 0..8 {
                    s[c] = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, v[c]), _mm256_set1_epi16(1));
                }
                transpose8(&mut s);
                let mut sum = s[0];
                for t in &s[1..] {
                    sum = _mm256_add_epi32(sum, *t);
                }
                let corr = _mm256_mullo_epi32(sum, _mm256_set1_epi32(-F::OFFSET));
                _mm256_storeu_si256(dst.add(40 * N + 32 * h) as *mut __m256i, corr);
            }
            transpose8(&mut v);
            for (g, vg) in v.iter().enumerate() {
                _mm256_storeu_si256(dst.add(4 * N * g + 32 * h) as *mut __m256i, *vg);
            }
            for (i, dh) in d.iter().enumerate() {
                let f = _mm256_cvtph_ps(_mm_loadu_si128(dh.as_ptr() as *const __m128i));
                _mm256_storeu_ps(dst.add(32 * N + 4 * N * i + 32 * h) as *mut f32, f);
            }
        }
    }
}

/// The codes of one weight block, stored so that their 4-byte groups can be broadcast.
#[inline(always)]
unsafe fn codes_bytes<I: Isa, F: Fmt32>(w: *const u8) -> [u8; 32] {
    let mut codes = [0u8; 32];
    _mm256_storeu_si256(codes.as_mut_ptr() as *mut __m256i, F::codes::<I>(w));
    codes
}

/// The term vector (lanes are the eight columns) of one weight block against the repacked
/// activation block `xb`: `(d_w * d_x) * sumi (+ m_w * s_x)`.
///
/// # Safety
/// `w` points to a whole weight block, `xb` to a block written by [`repack`] (`N = 8`) for the
/// same format and instruction set, and the CPU supports the instruction set.
#[inline(always)]
pub unsafe fn block_term<I: Isa, F: Fmt32>(w: *const u8, xb: *const u8) -> __m256 {
    let codes = codes_bytes::<I, F>(w);
    let mut acc =
        if I::uses_offset::<F>() { _mm256_loadu_si256(xb.add(320) as *const __m256i) } else { _mm256_setzero_si256() };
    for g in 0..8 {
        // The four codes of group g, in every lane (a broadcast load).
        let wg = _mm256_set1_epi32(read_u32(codes.as_ptr().add(4 * g)) as i32);
        acc = I::dot_lanes::<F>(acc, wg, load256(xb.add(32 * g)));
    }
    let dx = _mm256_loadu_ps(xb.add(256) as *const f32);
    let mut t = _mm256_mul_ps(_mm256_mul_ps(f16_splat(read_u16(w)), dx), _mm256_cvtepi32_ps(acc));
    if F::HAS_MIN {
        let sx = _mm256_loadu_ps(xb.add(288) as *const f32);
        t = _mm256_add_ps(t, _mm256_mul_ps(f16_splat(read_u16(w.add(2))), sx));
    }
    t
}

/// [`block_term`] on 512-bit vectors: sixteen columns, against a block written by [`repack`]
/// with `N = 16`.
///
/// # Safety
/// As [`block_term`], and the CPU supports AVX-512 F/BW/VNNI (`I::WIDE16`).
#[inline(always)]
pub unsafe fn block_term16<I: Isa, F: Fmt32>(w: *const u8, xb: *const u8) -> __m512 {
    let codes = codes_bytes::<I, F>(w);
    let mut acc =
        if I::uses_offset::<F>() { _mm512_loadu_si512(xb.add(640) as *const _) } else { _mm512_setzero_si512() };
    for g in 0..8 {
        let wg = _mm512_set1_epi32(read_u32(codes.as_ptr().add(4 * g)) as i32);
        acc = I::dot_lanes16::<F>(acc, wg, _mm512_loadu_si512(xb.add(64 * g) as *const _));
    }
    let dx = _mm512_loadu_ps(xb.add(512) as *const f32);
    let dw = _mm512_cvtph_ps(_mm256_set1_epi16(read_u16(w) as i16));
    let mut t = _mm512_mul_ps(_mm512_mul_ps(dw, dx), _mm512_cvtepi32_ps(acc));
    if F::HAS_MIN {
        let sx = _mm512_loadu_ps(xb.add(576) as *const f32);
        t = _mm512_add_ps(t, _mm512_mul_ps(_mm512_cvtph_ps(_mm256_set1_epi16(read_u16(w.add(2)) as i16)), sx));
    }
    t
}
