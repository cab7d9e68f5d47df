//! Block layouts of the ggml quantized formats, and the bit-unpacking helpers that every
//! implementation (scalar and SIMD) shares.
//!
//! All multi-byte fields are little-endian; `f16` is IEEE binary16. Blocks are packed with no
//! padding, so a block may start at any byte offset (every reader here does unaligned loads).
//!
//! 32-element blocks (`QK = 32`), element `j` of the block:
//!
//! | type   | bytes | layout                                   | value of element `j`                  |
//! |--------|-------|------------------------------------------|---------------------------------------|
//! | `Q4_0` | 18    | `d: f16, qs: [u8; 16]`                   | `d * (nib(j) - 8)`                    |
//! | `Q4_1` | 20    | `d: f16, m: f16, qs: [u8; 16]`           | `d * nib(j) + m`                      |
//! | `Q5_0` | 22    | `d: f16, qh: u32, qs: [u8; 16]`          | `d * ((nib(j) \| bit(qh, j) << 4) - 16)` |
//! | `Q5_1` | 24    | `d: f16, m: f16, qh: u32, qs: [u8; 16]`  | `d * (nib(j) \| bit(qh, j) << 4) + m`   |
//! | `Q8_0` | 34    | `d: f16, qs: [i8; 32]`                   | `d * qs[j]`                           |
//! | `Q8_1` | 36    | `d: f16, s: f16, qs: [i8; 32]`           | `d * qs[j]`; `s = d * Σ qs`            |
//!
//! where `nib(j)` is the low nibble of `qs[j]` for `j < 16` and the high nibble of `qs[j - 16]`
//! otherwise.
//!
//! 256-element super-blocks (`QK_K = 256`):
//!
//! | type   | bytes | layout                                                                  |
//! |--------|-------|-------------------------------------------------------------------------|
//! | `Q2_K` | 84    | `scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16`                     |
//! | `Q3_K` | 110   | `hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16`               |
//! | `Q4_K` | 144   | `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`                    |
//! | `Q5_K` | 176   | `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]`      |
//! | `Q6_K` | 210   | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`                 |
//! | `Q8_K` | 292   | `d: f32, qs: [i8; 256], bsums: [i16; 16]` (`bsums[i] = Σ qs[16i..16i+16]`) |
//!
//! Inside a K super-block the bits of element `e` are spread as follows (`h = e / 128` selects
//! a half, `c = e / 32` a 32-element chunk, `l = e % 32`):
//! * `Q2_K`: 2 bits `(qs[32h + l] >> 2(c % 4)) & 3`; sub-block `e / 16` has scale `scales[e/16] & 15`
//!   and min `scales[e/16] >> 4`; value `d * sc * q - dmin * min`.
//! * `Q3_K`: low 2 bits as `Q2_K`; high bit `hmask[l] >> c & 1`; `q = low - (high ? 0 : 4)`;
//!   sixteen 6-bit scales (see [`q3k_scales`]) offset by 32; value `d * (sc - 32) * q`.
//! * `Q4_K`: nibble `qs[32(c/2) + l]`, low for even `c`, high for odd `c`; eight 6-bit scales and
//!   mins (see [`q4k_scales_mins`]), one per chunk; value `d * sc * q - dmin * min`.
//! * `Q5_K`: as `Q4_K` with a fifth bit `qh[l] >> c & 1`.
//! * `Q6_K`: with `t = c % 4`: low nibble of `ql[64h + 32(t % 2) + l]` (low for `t < 2`, high
//!   otherwise), two high bits `(qh[32h + l] >> 2t) & 3`; `q = bits - 32`; value
//!   `d * scales[e/16] * q`.

/// Elements per block of the 32-element formats.
pub const QK: usize = 32;
/// Elements per K super-block.
pub const QK_K: usize = 256;

/// Bytes per block, as constants for the hot paths (`GgmlType::type_size` is a table search).
pub mod size {
    pub const Q4_0: usize = 18;
    pub const Q4_1: usize = 20;
    pub const Q5_0: usize = 22;
    pub const Q5_1: usize = 24;
    pub const Q8_0: usize = 34;
    pub const Q8_1: usize = 36;
    pub const Q2_K: usize = 84;
    pub const Q3_K: usize = 110;
    pub const Q4_K: usize = 144;
    pub const Q5_K: usize = 176;
    pub const Q6_K: usize = 210;
    pub const Q8_K: usize = 292;
}

/// Byte offsets of the fields of a K super-block that the kernels read.
pub mod off {
    pub const Q2_K_QS: usize = 16;
    pub const Q2_K_D: usize = 80;
    pub const Q3_K_QS: usize = 32;
    pub const Q3_K_SCALES: usize = 96;
    pub const Q3_K_D: usize = 108;
    pub const Q4_K_SCALES: usize = 4;
    pub const Q4_K_QS: usize = 16;
    pub const Q5_K_QH: usize = 16;
    pub const Q5_K_QS: usize = 48;
    pub const Q6_K_QH: usize = 128;
    pub const Q6_K_SCALES: usize = 192;
    pub const Q6_K_D: usize = 208;
    pub const Q8_K_QS: usize = 4;
    pub const Q8_K_BSUMS: usize = 260;
}

#[inline(always)]
pub fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
pub fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_bits(u32_at(b, at))
}

/// The `f16` stored at `b[at..at + 2]`, widened (exactly) to `f32`.
#[inline(always)]
pub fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16_at(b, at)).to_f32()
}

/// `f32` to `f16` bits, rounding to nearest even (what F16C's `vcvtps2ph` with imm 0 does,
/// and so what llama.cpp's CPU backend stores).
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// `f32` to `bf16` bits exactly as ggml does it: NaN becomes a quiet NaN keeping the sign and
/// top mantissa bits, everything else rounds to nearest even (overflowing to infinity).
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

#[inline(always)]
pub fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// Unpacks the twelve bytes of 6-bit scales and mins of `Q4_K`/`Q5_K` into eight scales and
/// eight mins, one per 32-element chunk.
///
/// Bytes 0..4 hold the low 6 bits of scales 0..4 (top 2 bits: high bits of scales 4..8),
/// bytes 4..8 the same for the mins, bytes 8..12 the low nibbles of scales 4..8 (low half)
/// and mins 4..8 (high half).
#[inline(always)]
pub fn q4k_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 0xf) | ((s[j] >> 6) << 4);
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, mn)
}

/// Unpacks the twelve bytes of `Q3_K` scales into sixteen signed scales (already offset by
/// -32, so in `-32..=31`), one per 16-element sub-block.
///
/// Scale `i` has its low nibble in byte `i % 8` (low half for `i < 8`, high half otherwise)
/// and its top two bits in byte `8 + i % 4` at bit `2 * (i / 4)`.
#[inline(always)]
pub fn q3k_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = (s[i % 8] >> (4 * (i / 8))) & 0xf;
        let high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = ((low | (high << 4)) as i8) - 32;
    }
    out
}
