//! Per-format SIMD decoders: one weight block (or one 32-element chunk of a K super-block) to
//! 32 unsigned byte codes in a 256-bit vector, in element order, matching the activation bytes
//! they multiply. Layouts are documented in [`crate::blocks`].
//!
//! Every function reads through raw pointers; callers pass a pointer to the start of a whole
//! block inside a checked slice, and each read below stays inside that block.

#![allow(non_camel_case_types)]

use std::arch::x86_64::*;

use super::isa::{Codes, Isa};
use super::mem::{load128, load256, read_u32};
use crate::blocks::{off, size};

/// `v >> n` on each 16-bit lane; `n` is a run-time count (a constant after unrolling).
#[inline(always)]
unsafe fn srl16(v: __m256i, n: usize) -> __m256i {
    _mm256_srl_epi16(v, _mm_cvtsi32_si128(n as i32))
}

#[inline(always)]
unsafe fn mask8(v: __m256i, m: i8) -> __m256i {
    _mm256_and_si256(v, _mm256_set1_epi8(m))
}

/// 16 bytes of nibbles to 32 codes: low nibbles are elements 0..16, high nibbles 16..32.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    let q = load128(p);
    mask8(_mm256_set_m128i(_mm_srli_epi16::<4>(q), q), 0xf)
}

// ---------------------------------------------------------------------------------------------
// 32-element blocks.

/// A 32-element weight format and the activation format it is paired with, described by where
/// its fields sit; the decoders below are generic over that description.
pub trait Fmt32: Codes {
    /// Bytes per weight block; the block starts with `d: f16` (then `m: f16` if `HAS_MIN`).
    const BYTES: usize;
    const HAS_MIN: bool;
    /// Where the quants start: 16 bytes of nibbles, or 32 signed bytes if not `NIBBLES`.
    const QS_AT: usize;
    const NIBBLES: bool;
    /// Where the `u32` of fifth bits sits, if `HAS_QH`.
    const QH_AT: usize;
    const HAS_QH: bool;
    /// Bytes per activation block (`Q8_0`: 34, `Q8_1`: 36) and where its quants start; it
    /// starts with `d: f16` (then `s: f16` for `Q8_1`).
    const ACT_BYTES: usize;
    const ACT_QS: usize;

    /// The block's 32 codes (values plus [`Codes::OFFSET`]).
    #[inline(always)]
    unsafe fn codes<I: Isa>(p: *const u8) -> __m256i {
        if Self::NIBBLES {
            let low = nibbles(p.add(Self::QS_AT));
            if Self::HAS_QH {
                _mm256_or_si256(low, I::bits_to_bytes(read_u32(p.add(Self::QH_AT)), 0x10))
            } else {
                low
            }
        } else {
            // Signed bytes become codes by flipping the sign bit (q + 128 as u8).
            _mm256_xor_si256(load256(p.add(Self::QS_AT)), _mm256_set1_epi8(-128))
        }
    }

    /// The codes of two blocks (at `p0` and `p1`) in one 512-bit vector.
    ///
    /// # Safety
    /// Besides two whole blocks, the CPU must support AVX-512 F/BW.
    #[inline(always)]
    unsafe fn codes2(p0: *const u8, p1: *const u8) -> __m512i {
        let (q0, q1) = (p0.add(Self::QS_AT), p1.add(Self::QS_AT));
        if Self::NIBBLES {
            // [q0, q0, q1, q1] in the four 128-bit lanes, lanes 1 and 3 shifted down a nibble.
            let both = _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(load128(q0)), 0xff00, load128(q1));
            let split = _mm512_mask_srli_epi16(both, 0xff00_ff00, both, 4);
            let low = _mm512_and_si512(split, _mm512_set1_epi8(0xf));
            if Self::HAS_QH {
                let qh = read_u32(p0.add(Self::QH_AT)) as u64 | (read_u32(p1.add(Self::QH_AT)) as u64) << 32;
                _mm512_or_si512(low, _mm512_maskz_set1_epi8(qh, 0x10))
            } else {
                low
            }
        } else {
            let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load256(q0)), load256(q1));
            _mm512_xor_si512(both, _mm512_set1_epi8(-128))
        }
    }
}

macro_rules! fmt32 {
    ($name:ident, bytes $bytes:expr, min $min:expr, act $act:expr, offset $off:expr, max $max:expr,
     qs $qs:expr, nibbles $nib:expr, qh $qh:expr) => {
        pub struct $name;
        impl Codes for $name {
            const OFFSET: i32 = $off;
            const MAX_CODE: u8 = $max;
        }
        impl Fmt32 for $name {
            const BYTES: usize = $bytes;
            const HAS_MIN: bool = $min;
            const QS_AT: usize = $qs;
            const NIBBLES: bool = $nib;
            const QH_AT: usize = $qh;
            const HAS_QH: bool = $qh != 0;
            const ACT_BYTES: usize = $act;
            const ACT_QS: usize = $act - 32;
        }
    };
}

// (qh 0: no fifth bits; the field never sits at offset 0.)
fmt32!(Q4_0, bytes size::Q4_0, min false, act size::Q8_0, offset 8, max 15, qs 2, nibbles true, qh 0);
fmt32!(Q4_1, bytes size::Q4_1, min true, act size::Q8_1, offset 0, max 15, qs 4, nibbles true, qh 0);
fmt32!(Q5_0, bytes size::Q5_0, min false, act size::Q8_0, offset 16, max 31, qs 6, nibbles true, qh 2);
fmt32!(Q5_1, bytes size::Q5_1, min true, act size::Q8_1, offset 0, max 31, qs 8, nibbles true, qh 4);
fmt32!(Q8_0, bytes size::Q8_0, min false, act size::Q8_0, offset 128, max 255, qs 2, nibbles false, qh 0);

// ---------------------------------------------------------------------------------------------
// K super-blocks (paired with Q8_K activations).

/// Per super-block scale vectors of a K format, each sixteen `i16` lanes (lane `i` for
/// elements `16i..16i+16`).
#[derive(Clone, Copy)]
pub struct KScales {
    /// The integer scale of each 16 elements.
    pub scales: __m256i,
    /// The coefficient of activation `bsums[i]`: the mins for formats with a min, otherwise
    /// `OFFSET * scale` for the offset that made the codes unsigned.
    pub bias: __m256i,
}

pub trait FmtK {
    const BYTES: usize;
    /// Formats with a min subtract `dmin * Σ min * bsums` in float; the others fold their
    /// code offset into the integer sum.
    const HAS_MIN: bool;
    /// Where `d: f16` (and `dmin: f16` right after it, if `HAS_MIN`) sit in the block.
    const D_AT: usize;
    /// Whether the scales change every 16 elements (rather than every 32).
    const SUB16: bool;
    unsafe fn scales(p: *const u8) -> KScales;
    /// Codes of the 32-element chunk `j` (elements `32j..32j+32`), each at most 63 so that
    /// `vpmaddubsw` cannot saturate.
    unsafe fn codes(p: *const u8, j: usize) -> __m256i;
}

/// Widens 16 bytes of unsigned scales to `i16` lanes.
#[inline(always)]
unsafe fn widen_u8(v: __m128i) -> __m256i {
    _mm256_cvtepu8_epi16(v)
}

pub struct Q2_K;
impl FmtK for Q2_K {
    const BYTES: usize = size::Q2_K;
    const SUB16: bool = true;
    const HAS_MIN: bool = true;
    const D_AT: usize = off::Q2_K_D;
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> KScales {
        let s = load128(p);
        let low = _mm_and_si128(s, _mm_set1_epi8(0xf));
        let high = _mm_and_si128(_mm_srli_epi16::<4>(s), _mm_set1_epi8(0xf));
        KScales { scales: widen_u8(low), bias: widen_u8(high) }
    }
    #[inline(always)]
    unsafe fn codes(p: *const u8, j: usize) -> __m256i {
        let q = load256(p.add(off::Q2_K_QS + 32 * (j / 4)));
        mask8(srl16(q, 2 * (j % 4)), 3)
    }
}

pub struct Q3_K;
impl FmtK for Q3_K {
    const BYTES: usize = size::Q3_K;
    const SUB16: bool = true;
    const HAS_MIN: bool = false;
    const D_AT: usize = off::Q3_K_D;
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> KScales {
        // Sixteen 6-bit scales: low nibbles in bytes 0..8, top two bits in bytes 8..12
        // (see `blocks::q3k_scales`), four scales per u32 at a time.
        let s = p.add(off::Q3_K_SCALES);
        let (a, b, c) = (read_u32(s), read_u32(s.add(4)), read_u32(s.add(8)));
        let (lo, hi2) = (0x0f0f_0f0fu32, 0x0303_0303u32);
        let s0 = (a & lo) | ((c & hi2) << 4);
        let s1 = (b & lo) | (((c >> 2) & hi2) << 4);
        let s2 = ((a >> 4) & lo) | (((c >> 4) & hi2) << 4);
        let s3 = ((b >> 4) & lo) | (((c >> 6) & hi2) << 4);
        let packed = _mm_set_epi32(s3 as i32, s2 as i32, s1 as i32, s0 as i32);
        let scales = _mm256_cvtepi8_epi16(_mm_sub_epi8(packed, _mm_set1_epi8(32)));
        // Codes are q + 4 (q in -4..=3).
        KScales { scales, bias: _mm256_slli_epi16::<2>(scales) }
    }
    #[inline(always)]
    unsafe fn codes(p: *const u8, j: usize) -> __m256i {
        let q = load256(p.add(off::Q3_K_QS + 32 * (j / 4)));
        let low = mask8(srl16(q, 2 * (j % 4)), 3);
        // The high bit set means "no -4", i.e. code = low + 4.
        let high = _mm256_slli_epi16::<2>(mask8(srl16(load256(p), j), 1));
        _mm256_or_si256(low, high)
    }
}

/// The eight 6-bit scales and mins of `Q4_K`/`Q5_K` (see `blocks::q4k_scales_mins`),
/// duplicated to one per 16 elements.
#[inline(always)]
unsafe fn q4k_scales(p: *const u8) -> KScales {
    let s = p.add(off::Q4_K_SCALES);
    let (a, b, c) = (read_u32(s), read_u32(s.add(4)), read_u32(s.add(8)));
    let (low6, lo, hi2) = (0x3f3f_3f3fu32, 0x0f0f_0f0fu32, 0x0303_0303u32);
    let sc = (a & low6) as u64 | (((c & lo) | (((a >> 6) & hi2) << 4)) as u64) << 32;
    let mn = (b & low6) as u64 | ((((c >> 4) & lo) | (((b >> 6) & hi2) << 4)) as u64) << 32;
    let v = _mm_set_epi64x(mn as i64, sc as i64);
    KScales { scales: widen_u8(_mm_unpacklo_epi8(v, v)), bias: widen_u8(_mm_unpackhi_epi8(v, v)) }
}

pub struct Q4_K;
impl FmtK for Q4_K {
    const BYTES: usize = size::Q4_K;
    const SUB16: bool = false;
    const HAS_MIN: bool = true;
    const D_AT: usize = 0;
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> KScales {
        q4k_scales(p)
    }
    #[inline(always)]
    unsafe fn codes(p: *const u8, j: usize) -> __m256i {
        let q = load256(p.add(off::Q4_K_QS + 32 * (j / 2)));
        mask8(srl16(q, 4 * (j % 2)), 0xf)
    }
}

pub struct Q5_K;
impl FmtK for Q5_K {
    const BYTES: usize = size::Q5_K;
    const SUB16: bool = false;
    const HAS_MIN: bool = true;
    const D_AT: usize = 0;
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> KScales {
        q4k_scales(p)
    }
    #[inline(always)]
    unsafe fn codes(p: *const u8, j: usize) -> __m256i {
        let q = load256(p.add(off::Q5_K_QS + 32 * (j / 2)));
        let low = mask8(srl16(q, 4 * (j % 2)), 0xf);
        let high = _mm256_slli_epi16::<4>(mask8(srl16(load256(p.add(off::Q5_K_QH)), j), 1));
        _mm256_or_si256(low, high)
    }
}

pub struct Q6_K;
impl FmtK for Q6_K {
    const BYTES: usize = size::Q6_K;
    const SUB16: bool = true;
    const HAS_MIN: bool = false;
    const D_AT: usize = off::Q6_K_D;
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> KScales {
        let scales = _mm256_cvtepi8_epi16(load128(p.add(off::Q6_K_SCALES)));
        // Codes are q + 32 (q in -32..=31).
        KScales { scales, bias: _mm256_slli_epi16::<5>(scales) }
    }
    #[inline(always)]
    unsafe fn codes(p: *const u8, j: usize) -> __m256i {
        let (h, t) = (j / 4, j % 4);
        let ql = load256(p.add(64 * h + 32 * (t % 2)));
        let low = mask8(srl16(ql, 4 * (t / 2)), 0xf);
        let qh = load256(p.add(off::Q6_K_QH + 32 * h));
        let high = _mm256_slli_epi16::<4>(mask8(srl16(qh, 2 * t), 3));
        _mm256_or_si256(low, high)
    }
}

// ---------------------------------------------------------------------------------------------
// Float rows.

/// An element type of float rows: eight elements at a time widened to `f32`.
pub trait FmtF {
    const WIDTH: usize;
    unsafe fn load8(p: *const u8) -> __m256;
    unsafe fn load1(p: *const u8) -> f32;
}

pub struct F32;
impl FmtF for F32 {
    const WIDTH: usize = 4;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_loadu_ps(p as *const f32)
    }
    #[inline(always)]
    unsafe fn load1(p: *const u8) -> f32 {
        std::ptr::read_unaligned(p as *const f32)
    }
}

pub struct F16;
impl FmtF for F16 {
    const WIDTH: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_cvtph_ps(load128(p))
    }
    #[inline(always)]
    unsafe fn load1(p: *const u8) -> f32 {
        half::f16::from_bits(std::ptr::read_unaligned(p as *const u16)).to_f32()
    }
}

pub struct BF16;
impl FmtF for BF16 {
    const WIDTH: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(load128(p))))
    }
    #[inline(always)]
    unsafe fn load1(p: *const u8) -> f32 {
        f32::from_bits((std::ptr::read_unaligned(p as *const u16) as u32) << 16)
    }
}
