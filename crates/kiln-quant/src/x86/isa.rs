//! The integer dot-product primitives that differ between the x86 instruction sets. The kernels
//! are generic over [`Isa`]; the rest of what they use is AVX2, plus AVX-512 in the paths that
//! only run when [`Isa::WIDE16`].
//!
//! All methods are `#[inline(always)]` and only ever inlined into `#[target_feature]` entry
//! points whose feature set includes the one named on the implementing type, which is what
//! makes calling the intrinsics sound and lets them compile to single instructions.

use std::arch::x86_64::*;

/// How a 32-element weight block of a 32-element format presents its 32 values: as unsigned
/// codes `u = value + OFFSET` (`u` as `u8`), with `MAX_CODE` the largest code it can produce.
pub trait Codes {
    const OFFSET: i32;
    const MAX_CODE: u8;
}

/// The integer primitives, per instruction set, on 256-bit vectors (and 512-bit ones where the
/// instruction set has them).
pub trait Isa: Copy {
    /// Prepared weight codes (see [`Isa::prep_w`]).
    type W: Copy;
    /// Prepared activations (see [`Isa::prep_y`]).
    type Y: Copy;

    /// `acc + madd(a, b)`: pairwise `i16` products summed into `i32` lanes.
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;

    /// Bytes `v` where bit `j` of `bits` is set, 0 elsewhere (byte `j` from bit `j`).
    unsafe fn bits_to_bytes(bits: u32, v: i8) -> __m256i;

    /// Prepares 32 weight codes (in `C`'s encoding) for [`Isa::dot`], once per weight block.
    unsafe fn prep_w<C: Codes>(u: __m256i) -> Self::W;
    /// Prepares 32 signed activation bytes for [`Isa::dot`], once per activation block.
    unsafe fn prep_y<C: Codes>(y: __m256i) -> Self::Y;
    /// Eight `i32` lanes whose total is `Σ_j value_j * y_j` exactly (lane `i` holds the part
    /// from elements `4i..4i+4`, possibly offset by a part of the correction).
    unsafe fn dot<C: Codes>(w: Self::W, y: Self::Y) -> __m256i;

    /// Whether [`Isa::dot_lanes`] leaves the code offset in its sums (so that the caller must
    /// subtract `OFFSET * Σ y`).
    fn uses_offset<C: Codes>() -> bool;
    /// `acc + Σ_{4 bytes} w * y` per `i32` lane, `w` holding codes in `C`'s encoding: the code
    /// sums if [`Isa::uses_offset`], the value sums otherwise.
    unsafe fn dot_lanes<C: Codes>(acc: __m256i, w: __m256i, y: __m256i) -> __m256i;

    /// Whether the instruction set has 512-bit integer dot products ([`Isa::dot_lanes16`]).
    const WIDE16: bool = false;
    /// [`Isa::dot_lanes`] on 512-bit vectors. Only called when `WIDE16`.
    unsafe fn dot_lanes16<C: Codes>(_acc: __m512i, _w: __m512i, _y: __m512i) -> __m512i {
        unreachable!("no 512-bit dot products")
    }
}

/// AVX2 + FMA (+ F16C): `vpmaddubsw` then `vpmaddwd`.
///
/// `vpmaddubsw` saturates its `i16` pair sums, so codes are only fed to it unsigned and small
/// enough that `2 * code * 127` fits (`MAX_CODE <= 128`); activations are in `-127..=127` (what
/// the activation quantizers produce). `Q8_0` weights (`MAX_CODE = 255`) go through the sign
/// trick instead: `|w|` times `y` with `w`'s sign, `2 * 128 * 127` fitting as well.
#[derive(Clone, Copy)]
pub struct Avx2;

/// AVX-512 VNNI (`vpdpbusd`, `vpdpwssd`, with AVX-512 F/BW/VL), on 256- and 512-bit vectors.
/// These do not saturate, so every encoding goes through `vpdpbusd` directly.
#[derive(Clone, Copy)]
pub struct Avx512Vnni;

#[inline(always)]
unsafe fn ones16() -> __m256i {
    _mm256_set1_epi16(1)
}

impl Isa for Avx2 {
    type W = [__m256i; 2];
    type Y = [__m256i; 2];

    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
    }

    #[inline(always)]
    unsafe fn bits_to_bytes(bits: u32, v: i8) -> __m256i {
        // Byte j takes byte j / 8 of `bits`, is OR-ed with a mask that has every bit but
        // j % 8 set, and compares equal to all-ones exactly when bit j was set.
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits as i32),
            _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
        );
        let probe = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
        let set = _mm256_cmpeq_epi8(probe, _mm256_set1_epi64x(-1));
        _mm256_and_si256(set, _mm256_set1_epi8(v))
    }

    #[inline(always)]
    unsafe fn prep_w<C: Codes>(u: __m256i) -> Self::W {
        if C::MAX_CODE > 128 {
            // Sign trick: back to the signed value (u - 128 is u ^ 0x80), keep |w| and w.
            let w = _mm256_xor_si256(u, _mm256_set1_epi8(-128));
            [_mm256_sign_epi8(w, w), w]
        } else {
            [u, u]
        }
    }

    #[inline(always)]
    unsafe fn prep_y<C: Codes>(y: __m256i) -> Self::Y {
        if C::MAX_CODE <= 128 && C::OFFSET != 0 {
            // OFFSET * (y_4i + .. + y_4i+3) per lane, subtracted from the code dot product.
            let off = _mm256_set1_epi8(C::OFFSET as i8);
            [y, _mm256_madd_epi16(_mm256_maddubs_epi16(off, y), ones16())]
        } else {
            [y, y]
        }
    }

    #[inline(always)]
    unsafe fn dot<C: Codes>(w: Self::W, y: Self::Y) -> __m256i {
        if C::MAX_CODE > 128 {
            let p = _mm256_maddubs_epi16(w[0], _mm256_sign_epi8(y[0], w[1]));
            _mm256_madd_epi16(p, ones16())
        } else {
            let s = _mm256_madd_epi16(_mm256_maddubs_epi16(w[0], y[0]), ones16());
            if C::OFFSET != 0 {
                _mm256_sub_epi32(s, y[1])
            } else {
                s
            }
        }
    }

    fn uses_offset<C: Codes>() -> bool {
        C::OFFSET != 0 && C::MAX_CODE <= 128
    }

    #[inline(always)]
    unsafe fn dot_lanes<C: Codes>(acc: __m256i, w: __m256i, y: __m256i) -> __m256i {
        let [wu, ws] = Self::prep_w::<C>(w);
        let p = if C::MAX_CODE > 128 {
            _mm256_maddubs_epi16(wu, _mm256_sign_epi8(y, ws))
        } else {
            _mm256_maddubs_epi16(wu, y)
        };
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones16()))
    }
}

impl Isa for Avx512Vnni {
    type W = __m256i;
    type Y = [__m256i; 2];

    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, a, b)
    }

    #[inline(always)]
    unsafe fn bits_to_bytes(bits: u32, v: i8) -> __m256i {
        _mm256_maskz_set1_epi8(bits, v)
    }

    #[inline(always)]
    unsafe fn prep_w<C: Codes>(u: __m256i) -> Self::W {
        u
    }

    #[inline(always)]
    unsafe fn prep_y<C: Codes>(y: __m256i) -> Self::Y {
        if C::OFFSET != 0 {
            // -OFFSET * (y_4i + .. + y_4i+3) per lane: the starting value of the accumulator,
            // so that one vpdpbusd per weight row gives Σ (u - OFFSET) y.
            let off = _mm256_set1_epi8(C::OFFSET as u8 as i8);
            let corr = _mm256_dpbusd_epi32(_mm256_setzero_si256(), off, y);
            [y, _mm256_sub_epi32(_mm256_setzero_si256(), corr)]
        } else {
            [y, _mm256_setzero_si256()]
        }
    }

    #[inline(always)]
    unsafe fn dot<C: Codes>(w: Self::W, y: Self::Y) -> __m256i {
        _mm256_dpbusd_epi32(y[1], w, y[0])
    }

    fn uses_offset<C: Codes>() -> bool {
        C::OFFSET != 0
    }

    #[inline(always)]
    unsafe fn dot_lanes<C: Codes>(acc: __m256i, w: __m256i, y: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, w, y)
    }

    const WIDE16: bool = true;

    #[inline(always)]
    unsafe fn dot_lanes16<C: Codes>(acc: __m512i, w: __m512i, y: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(acc, w, y)
    }
}
