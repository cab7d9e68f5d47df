//! Matmul kernels generic over the instruction set ([`Isa`]) and the weight format, and the
//! driver that covers a whole `n_rows × m` output with them.
//!
//! Shapes of work, by the number `m` of activation rows (columns of the output):
//! * Rows (`m = 1`, generation): one weight row at a time, eight consecutive blocks per step
//!   (lane `j` for block `8i + j`; on AVX-512 two blocks per 512-bit vector). Walking a single
//!   row keeps the weight stream sequential, which the hardware prefetchers serve far better
//!   than several interleaved row streams.
//! * Tiles (`m` = 2..4, and remainders): `MR` weight rows against `NC` activation rows,
//!   `MR * NC = 8` dot products (pair `p = r * NC + c`, one vector lane each). Per block each
//!   weight row's block is decoded once and reused for the `NC` activations, and each
//!   activation block is loaded once for the `MR` rows. Shapes `2×4` and `4×2`.
//! * Many columns (prompts): activation columns in vector lanes, eight or sixteen at a time
//!   ([`super::wide`] for the 32-element formats, [`super::widek`] for the K formats on
//!   AVX-512), which needs no horizontal reduction per block.
//!
//! Exactness: for the quantized formats every block's integer sum is formed exactly, and only
//! then do the float operations of the scalar reference run, lane-wise and without fused
//! multiply-adds: block `b`'s term goes into partial sum `b % 8`, and the eight partial sums are
//! combined as `((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))`. Tiles and many-column kernels
//! keep the eight partial sums in eight vectors (lanes are pairs or columns), rows in the eight
//! lanes of one vector (lanes are blocks); all reproduce [`crate::scalar`] bit for bit. Float
//! weights accumulate with FMA in `f32` lanes instead.
//!
//! Activation scales (`f16` or `f32` in each activation block) are converted once per group of
//! columns into "scale planes" of `f32`, block-major (`plane[b * NC + c]`), so that a tile
//! gets its `NC` column scales with one broadcast load and a row step its eight with one load.

use std::arch::x86_64::*;

use super::formats::{Fmt32, FmtF, FmtK};
use super::isa::Isa;
use super::mem::{load256, read_f32, read_u16};
use super::{wide, widek};
use crate::blocks::{off, size, QK, QK_K};
use std::marker::PhantomData;

/// A matmul kernel for one weight format on one instruction set.
///
/// # Safety (all methods)
/// The pointers point to whole rows (of the `k` the kernel was built for) inside live slices,
/// `xs` points to `X_PLANES * plane_len(blocks, NC)` floats, which `tile` and `row` only read
/// after [`Kernel::x_scales`] wrote them for the same activation rows, and the CPU supports the
/// kernel's instruction set.
pub trait Kernel {
    /// How many scale planes the kernel uses (0, 1: `d`, or 2: `d` and `s`).
    const X_PLANES: usize;

    /// Blocks per row.
    fn blocks(&self) -> usize;

    /// Writes all the scale planes of the `NC` activation rows `x`: plane `i` starts at
    /// `i * plane_len(blocks, NC)`, with block `b` of row `c` at `b * NC + c`, zero past the
    /// last block.
    unsafe fn x_scales<const NC: usize>(&self, x: &[*const u8; NC], xs: *mut f32);

    /// `out[r * NC + c] = dot(w[r], x[c])`.
    unsafe fn tile<const MR: usize, const NC: usize>(
        &self,
        w: &[*const u8; MR],
        x: &[*const u8; NC],
        xs: *const f32,
    ) -> [f32; 8];

    /// `dot(w, x)` for one weight row (`xs` written for `NC = 1`).
    unsafe fn row(&self, w: *const u8, x: *const u8, xs: *const f32) -> f32;

    /// Whether the kernel has the eight-column form ([`super::wide`]).
    const WIDE: bool = false;

    /// Bytes of repacked activations the many-column forms need.
    fn wide_bytes(&self) -> usize {
        0
    }

    /// Repacks eight activation rows for [`Kernel::wide_row`] into `out` (`wide_bytes()`).
    unsafe fn wide_prep(&self, _x: &[*const u8; 8], _out: *mut u8) {}

    /// `dot(w, x[c])` for the eight columns repacked at `xr`.
    unsafe fn wide_row(&self, _w: *const u8, _xr: *const u8) -> [f32; 8] {
        unreachable!("no eight-column form")
    }

    /// Whether the kernel has the sixteen-column form (512-bit vectors).
    const WIDE16: bool = false;

    /// [`Kernel::wide_prep`] for sixteen columns.
    unsafe fn wide16_prep(&self, _x: &[*const u8; 16], _out: *mut u8) {}

    /// [`Kernel::wide_row`] for sixteen columns.
    unsafe fn wide16_row(&self, _w: *const u8, _xr: *const u8) -> [f32; 16] {
        unreachable!("no sixteen-column form")
    }
}

/// Length of one scale plane: the blocks rounded up to a whole row step, times the columns.
const fn plane_len(blocks: usize, nc: usize) -> usize {
    blocks.div_ceil(8) * 8 * nc
}

/// Lane `p` of the result is the sum of the eight `i32` lanes of `v[p]` (exact: integers).
#[inline(always)]
unsafe fn reduce8(v: &[__m256i; 8]) -> __m256i {
    let a0 = _mm256_hadd_epi32(v[0], v[1]);
    let a1 = _mm256_hadd_epi32(v[2], v[3]);
    let a2 = _mm256_hadd_epi32(v[4], v[5]);
    let a3 = _mm256_hadd_epi32(v[6], v[7]);
    // b0 = [v0 v1 v2 v3 partial sums of the low 128 bits | same of the high 128 bits]
    let b0 = _mm256_hadd_epi32(a0, a1);
    let b1 = _mm256_hadd_epi32(a2, a3);
    let lo = _mm256_permute2x128_si256::<0x20>(b0, b1);
    let hi = _mm256_permute2x128_si256::<0x31>(b0, b1);
    _mm256_add_epi32(lo, hi)
}

/// The same tree across the eight lanes of `v` (float addition commutes exactly).
#[inline(always)]
unsafe fn tree8_horizontal(v: __m256) -> f32 {
    let pairs = _mm256_add_ps(v, _mm256_permute_ps::<0b10_11_00_01>(v));
    let quads = _mm256_add_ps(pairs, _mm256_permute_ps::<0b01_00_11_10>(pairs));
    let all = _mm256_add_ps(quads, _mm256_permute2f128_ps::<0x01>(quads, quads));
    _mm256_cvtss_f32(all)
}

/// Per-pair lanes of per-row `f16` values: lane `r * NC + c` gets `rows[r]` widened.
/// One `vcvtph2ps` of the packed values and one permute (tiles have `MR <= 4`).
#[inline(always)]
unsafe fn row_lanes<const MR: usize, const NC: usize>(rows: [u16; MR]) -> __m256 {
    const { assert!(MR <= 4 && MR * NC == 8) };
    let mut packed = 0u64;
    for (r, &v) in rows.iter().enumerate() {
        packed |= (v as u64) << (16 * r);
    }
    let wide = _mm256_castps128_ps256(_mm_cvtph_ps(_mm_cvtsi64_si128(packed as i64)));
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_permutevar8x32_ps(wide, _mm256_div_epi32_by::<NC>(idx))
}

/// `v / N` lane-wise for a power-of-two `N` (the pair index to its row index).
#[inline(always)]
unsafe fn _mm256_div_epi32_by<const N: usize>(v: __m256i) -> __m256i {
    match N {
        1 => v,
        2 => _mm256_srli_epi32::<1>(v),
        4 => _mm256_srli_epi32::<2>(v),
        _ => _mm256_srli_epi32::<3>(v),
    }
}

/// Per-pair lanes of per-column values stored contiguously at `p` (`NC` floats): lane
/// `r * NC + c` gets `p[c]`, with one broadcast load.
#[inline(always)]
unsafe fn col_lanes<const NC: usize>(p: *const f32) -> __m256 {
    match NC {
        // Unaligned reads (the planes are only f32-aligned); these compile to broadcast loads.
        1 => _mm256_set1_ps(*p),
        2 => _mm256_castpd_ps(_mm256_set1_pd(std::ptr::read_unaligned(p as *const f64))),
        4 => {
            let v = _mm_loadu_ps(p);
            _mm256_set_m128(v, v)
        }
        _ => _mm256_loadu_ps(p),
    }
}

/// Eight `u32` at `base + idx[j]` (one gather).
#[inline(always)]
unsafe fn gather_u32(base: *const u8, idx: __m256i) -> __m256i {
    _mm256_i32gather_epi32::<1>(base as *const i32, idx)
}

/// The low and high 16-bit halves of eight `u32` lanes, each widened from `f16` to `f32`.
#[inline(always)]
unsafe fn f16_halves(v: __m256i) -> (__m256, __m256) {
    // Per 128-bit lane: four low halves, then four high halves; then gather the low quads and
    // the high quads of both lanes.
    let split = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
    );
    let s = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(v, split));
    (_mm256_cvtph_ps(_mm256_castsi256_si128(s)), _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(s)))
}

#[inline(always)]
unsafe fn to_array(v: __m256) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), v);
    out
}

/// Evaluates the term vector `$step` for blocks `$b` in `0..$n`, adding block `b`'s term into
/// partial sum `b % 8`, and gives the tree of the partial sums (on 256-bit vectors, or 512-bit
/// ones with `zmm:`). Written as whole groups of eight plus a tail so that the partial sums can
/// stay in registers. A macro rather than a function taking a closure: a closure is compiled
/// without the caller's target features, and its intrinsics would not inline.
macro_rules! partial_sums {
    ($n:expr, |$b:ident| $step:expr) => {
        partial_sums!(@ $n, _mm256_setzero_ps, _mm256_add_ps, |$b| $step)
    };
    (zmm: $n:expr, |$b:ident| $step:expr) => {
        partial_sums!(@ $n, _mm512_setzero_ps, _mm512_add_ps, |$b| $step)
    };
    (@ $n:expr, $zero:ident, $add:ident, |$b:ident| $step:expr) => {{
        let n: usize = $n;
        let mut acc = [$zero(); 8];
        let mut base = 0;
        while base + 8 <= n {
            for j in 0..8 {
                let $b = base + j;
                acc[j] = $add(acc[j], $step);
            }
            base += 8;
        }
        for j in 0..n - base {
            let $b = base + j;
            acc[j] = $add(acc[j], $step);
        }
        // ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)), lane-wise.
        let s01 = $add(acc[0], acc[1]);
        let s23 = $add(acc[2], acc[3]);
        let s45 = $add(acc[4], acc[5]);
        let s67 = $add(acc[6], acc[7]);
        $add($add(s01, s23), $add(s45, s67))
    }};
}

// ---------------------------------------------------------------------------------------------

/// 32-element block formats × `Q8_0`/`Q8_1` activations.
pub struct Tile32<I, F> {
    blocks: usize,
    _p: PhantomData<(I, F)>,
}

impl<I: Isa, F: Fmt32> Tile32<I, F> {
    pub fn new(k: usize) -> Self {
        Tile32 { blocks: k / QK, _p: PhantomData }
    }

    /// The terms of blocks `b..b + valid` of one row (`valid <= 8`, lane `j` for block
    /// `b + j`). In a partial step (`!FULL`) only the valid blocks are computed (a pair of
    /// blocks on 512-bit vectors may repeat its first one), the scale reads repeat the last valid
    /// block, and the zero activation scales past the end of the row make those lanes add
    /// exactly nothing.
    #[inline(always)]
    unsafe fn row_step<const FULL: bool>(
        &self,
        w: *const u8,
        x: *const u8,
        xs: *const f32,
        b: usize,
        valid: usize,
    ) -> __m256 {
        let (w, x) = (w.add(b * F::BYTES), x.add(b * F::ACT_BYTES));
        let sums = if I::WIDE16 { Self::row_sums16::<FULL>(w, x, valid) } else { Self::row_sums::<FULL>(w, x, valid) };
        let step = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(F::BYTES as i32));
        let idx = if FULL { step } else { _mm256_min_epi32(step, _mm256_set1_epi32(((valid - 1) * F::BYTES) as i32)) };
        // `d` (and `m`) of the eight blocks: the first four bytes of each block.
        let (dw, mw) = f16_halves(gather_u32(w, idx));
        let plane = plane_len(self.blocks, 1);
        let dx = _mm256_loadu_ps(xs.add(b));
        let mut t = _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(sums));
        if F::HAS_MIN {
            t = _mm256_add_ps(t, _mm256_mul_ps(mw, _mm256_loadu_ps(xs.add(plane + b))));
        }
        t
    }

    /// The exact integer sums of the (up to) eight blocks at `w`, `x`, one per lane, on 256-bit
    /// vectors.
    #[inline(always)]
    unsafe fn row_sums<const FULL: bool>(w: *const u8, x: *const u8, valid: usize) -> __m256i {
        let mut lanes = [_mm256_setzero_si256(); 8];
        for (j, lane) in lanes.iter_mut().enumerate().take(if FULL { 8 } else { valid }) {
            let y = I::prep_y::<F>(load256(x.add(j * F::ACT_BYTES + F::ACT_QS)));
            *lane = I::dot::<F>(I::prep_w::<F>(F::codes::<I>(w.add(j * F::BYTES))), y);
        }
        reduce8(&lanes)
    }

    /// [`Self::row_sums`] on 512-bit vectors (two blocks per vector; only with `I::WIDE16`).
    #[inline(always)]
    unsafe fn row_sums16<const FULL: bool>(w: *const u8, x: *const u8, valid: usize) -> __m256i {
        let mut z = [_mm512_setzero_si512(); 4];
        for (k, zk) in z.iter_mut().enumerate().take(if FULL { 4 } else { valid.div_ceil(2) }) {
            let (j0, j1) = (2 * k, if FULL { 2 * k + 1 } else { (2 * k + 1).min(valid - 1) });
            let (y0, y1) = (x.add(j0 * F::ACT_BYTES + F::ACT_QS), x.add(j1 * F::ACT_BYTES + F::ACT_QS));
            let y = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load256(y0)), load256(y1));
            let codes = F::codes2(w.add(j0 * F::BYTES), w.add(j1 * F::BYTES));
            let start = if I::uses_offset::<F>() {
                // -OFFSET * (sum of each 4 activations): the dot products come out as values.
                let off = _mm512_set1_epi8(F::OFFSET as u8 as i8);
                _mm512_sub_epi32(_mm512_setzero_si512(), I::dot_lanes16::<F>(_mm512_setzero_si512(), off, y))
            } else {
                _mm512_setzero_si512()
            };
            *zk = I::dot_lanes16::<F>(start, codes, y);
        }
        reduce_pairs(&z)
    }
}

/// Lane `j` of the result is the sum of the eight `i32` lanes of block `j`, where `z[k]` holds
/// blocks `2k` (low 256 bits) and `2k + 1` (high 256 bits). Exact.
#[inline(always)]
unsafe fn reduce_pairs(z: &[__m512i; 4]) -> __m256i {
    // Per 128-bit lane: t01 = [z0 lanes 0+2, z1 0+2, z0 1+3, z1 1+3], t23 likewise.
    let t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(z[0], z[1]), _mm512_unpackhi_epi32(z[0], z[1]));
    let t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(z[2], z[3]), _mm512_unpackhi_epi32(z[2], z[3]));
    // u = [z0, z1, z2, z3 sums] per 128-bit lane: lane 0 holds the first halves of blocks
    // 0, 2, 4, 6, lane 1 their second halves, lanes 2 and 3 the same for blocks 1, 3, 5, 7.
    let u = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
    let v = _mm512_add_epi32(u, _mm512_shuffle_i64x2::<0b10_11_00_01>(u, u));
    let order = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, v))
}

impl<I: Isa, F: Fmt32> Kernel for Tile32<I, F> {
    const X_PLANES: usize = if F::HAS_MIN { 2 } else { 1 };
    const WIDE: bool = true;
    const WIDE16: bool = I::WIDE16;

    fn wide_bytes(&self) -> usize {
        self.blocks * wide::block_bytes(if I::WIDE16 { 16 } else { 8 })
    }

    #[inline(always)]
    unsafe fn wide_prep(&self, x: &[*const u8; 8], out: *mut u8) {
        wide::repack::<I, F, 8>(self.blocks, x, out)
    }

    #[inline(always)]
    unsafe fn wide_row(&self, w: *const u8, xr: *const u8) -> [f32; 8] {
        let acc = partial_sums!(self.blocks, |b| wide::block_term::<I, F>(
            w.add(b * F::BYTES),
            xr.add(b * wide::block_bytes(8))
        ));
        to_array(acc)
    }

    #[inline(always)]
    unsafe fn wide16_prep(&self, x: &[*const u8; 16], out: *mut u8) {
        wide::repack::<I, F, 16>(self.blocks, x, out)
    }

    #[inline(always)]
    unsafe fn wide16_row(&self, w: *const u8, xr: *const u8) -> [f32; 16] {
        let acc = partial_sums!(zmm: self.blocks, |b| wide::block_term16::<I, F>(
            w.add(b * F::BYTES),
            xr.add(b * wide::block_bytes(16))
        ));
        let mut out = [0.0f32; 16];
        _mm512_storeu_ps(out.as_mut_ptr(), acc);
        out
    }

    fn blocks(&self) -> usize {
        self.blocks
    }

    #[inline(always)]
    unsafe fn x_scales<const NC: usize>(&self, x: &[*const u8; NC], xs: *mut f32) {
        let plane = plane_len(self.blocks, NC);
        for (c, &row) in x.iter().enumerate() {
            for b0 in (0..self.blocks).step_by(8) {
                let n = (self.blocks - b0).min(8);
                // The `d` and `s` (f16) of up to eight blocks; zero past the last block.
                let mut h = [[0u16; 8]; 2];
                for (i, plane) in h.iter_mut().enumerate().take(Self::X_PLANES) {
                    for (j, v) in plane.iter_mut().enumerate().take(n) {
                        *v = read_u16(row.add((b0 + j) * F::ACT_BYTES + 2 * i));
                    }
                }
                for (i, h) in h.iter().enumerate().take(Self::X_PLANES) {
                    let v = to_array(_mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr() as *const __m128i)));
                    for (j, &v) in v.iter().enumerate() {
                        xs.add(i * plane + (b0 + j) * NC + c).write(v);
                    }
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn tile<const MR: usize, const NC: usize>(
        &self,
        w: &[*const u8; MR],
        x: &[*const u8; NC],
        xs: *const f32,
    ) -> [f32; 8] {
        let zero = _mm256_setzero_si256();
        let plane = plane_len(self.blocks, NC);
        let acc = partial_sums!(self.blocks, |b| {
            let wp = w.map(|p| p.add(b * F::BYTES));
            let mut wv = [I::prep_w::<F>(zero); MR];
            for r in 0..MR {
                wv[r] = I::prep_w::<F>(F::codes::<I>(wp[r]));
            }
            let mut lanes = [zero; 8];
            for c in 0..NC {
                let y = I::prep_y::<F>(load256(x[c].add(b * F::ACT_BYTES + F::ACT_QS)));
                for r in 0..MR {
                    lanes[r * NC + c] = I::dot::<F>(wv[r], y);
                }
            }
            // (d_w * d_x) * sumi (+ m_w * s_x): weight scales per row, activation per column.
            let dw = row_lanes::<MR, NC>(wp.map(|p| read_u16(p)));
            let dx = col_lanes::<NC>(xs.add(b * NC));
            let mut t = _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(reduce8(&lanes)));
            if F::HAS_MIN {
                let mw = row_lanes::<MR, NC>(wp.map(|p| read_u16(p.add(2))));
                t = _mm256_add_ps(t, _mm256_mul_ps(mw, col_lanes::<NC>(xs.add(plane + b * NC))));
            }
            t
        });
        to_array(acc)
    }

    #[inline(always)]
    unsafe fn row(&self, w: *const u8, x: *const u8, xs: *const f32) -> f32 {
        let n = self.blocks;
        let full = n / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        for b in (0..full).step_by(8) {
            acc = _mm256_add_ps(acc, self.row_step::<true>(w, x, xs, b, 8));
        }
        if full < n {
            acc = _mm256_add_ps(acc, self.row_step::<false>(w, x, xs, full, n - full));
        }
        tree8_horizontal(acc)
    }
}

// ---------------------------------------------------------------------------------------------

/// K super-block formats × `Q8_K` activations.
pub struct TileK<I, F> {
    blocks: usize,
    _p: PhantomData<(I, F)>,
}

impl<I: Isa, F: FmtK> TileK<I, F> {
    pub fn new(k: usize) -> Self {
        TileK { blocks: k / QK_K, _p: PhantomData }
    }
}

/// The `i16` scale lanes for chunk `j` (elements `32j..32j+32`) from the sixteen per-16
/// scales: lanes 0..8 (elements `32j..32j+16`) get scale `2j`, lanes 8..16 scale `2j + 1`.
#[inline(always)]
unsafe fn chunk_scales(scales: __m256i, j: usize) -> __m256i {
    let pair = _mm256_permutevar8x32_epi32(scales, _mm256_set1_epi32(j as i32));
    let pick =
        _mm256_set_epi64x(0x0302_0302_0302_0302, 0x0302_0302_0302_0302, 0x0100_0100_0100_0100, 0x0100_0100_0100_0100);
    _mm256_shuffle_epi8(pair, pick)
}

/// The float term of eight super-blocks (or pairs): `(d_w * d_x) * sumi`, minus
/// `(dmin_w * d_x) * summ` for formats with a min (whose `bias` lanes hold `summ`; the other
/// formats' bias is already folded into `lanes`).
#[inline(always)]
unsafe fn term_k<F: FmtK>(lanes: &[__m256i; 8], bias: &[__m256i; 8], dw: __m256, dmin: __m256, dx: __m256) -> __m256 {
    let sumi = _mm256_cvtepi32_ps(reduce8(lanes));
    let mut t = _mm256_mul_ps(_mm256_mul_ps(dw, dx), sumi);
    if F::HAS_MIN {
        let summ = _mm256_cvtepi32_ps(reduce8(bias));
        t = _mm256_sub_ps(t, _mm256_mul_ps(_mm256_mul_ps(dmin, dx), summ));
    }
    t
}

/// The integer sums of one weight super-block against one activation super-block: eight `i32`
/// lanes of `Σ scale · code · y` (minus the offset bias for formats without a min) and eight
/// lanes of the bias `Σ coef · bsums`.
#[inline(always)]
unsafe fn super_block_sums<I: Isa, F: FmtK>(w: *const u8, x: *const u8) -> (__m256i, __m256i) {
    let sc = F::scales(w);
    let mut acc = _mm256_setzero_si256();
    for j in 0..QK_K / 32 {
        let y = load256(x.add(off::Q8_K_QS + 32 * j));
        // codes <= 63 and |y| <= 127: the pair sums fit in i16 unsaturated.
        let p16 = _mm256_maddubs_epi16(F::codes(w, j), y);
        acc = I::madd_acc(acc, p16, chunk_scales(sc.scales, j));
    }
    let bias = _mm256_madd_epi16(load256(x.add(off::Q8_K_BSUMS)), sc.bias);
    if F::HAS_MIN {
        (acc, bias)
    } else {
        (_mm256_sub_epi32(acc, bias), bias)
    }
}

impl<I: Isa, F: FmtK> Kernel for TileK<I, F> {
    const X_PLANES: usize = 1;
    const WIDE16: bool = I::WIDE16;

    fn wide_bytes(&self) -> usize {
        self.blocks * widek::BLOCK_BYTES
    }

    #[inline(always)]
    unsafe fn wide16_prep(&self, x: &[*const u8; 16], out: *mut u8) {
        widek::repack(self.blocks, x, out)
    }

    #[inline(always)]
    unsafe fn wide16_row(&self, w: *const u8, xr: *const u8) -> [f32; 16] {
        let acc = partial_sums!(zmm: self.blocks, |s| widek::block_term::<F>(
            w.add(s * F::BYTES),
            xr.add(s * widek::BLOCK_BYTES)
        ));
        let mut out = [0.0f32; 16];
        _mm512_storeu_ps(out.as_mut_ptr(), acc);
        out
    }

    fn blocks(&self) -> usize {
        self.blocks
    }

    #[inline(always)]
    unsafe fn x_scales<const NC: usize>(&self, x: &[*const u8; NC], xs: *mut f32) {
        for (c, &row) in x.iter().enumerate() {
            for s in 0..self.blocks.div_ceil(8) * 8 {
                let d = if s < self.blocks { read_f32(row.add(s * size::Q8_K)) } else { 0.0 };
                xs.add(s * NC + c).write(d);
            }
        }
    }

    #[inline(always)]
    unsafe fn tile<const MR: usize, const NC: usize>(
        &self,
        w: &[*const u8; MR],
        x: &[*const u8; NC],
        xs: *const f32,
    ) -> [f32; 8] {
        let zero = _mm256_setzero_si256();
        let acc = partial_sums!(self.blocks, |s| {
            let wp = w.map(|p| p.add(s * F::BYTES));
            let xp = x.map(|p| p.add(s * size::Q8_K));
            let mut sc = [F::scales(wp[0]); MR];
            for r in 1..MR {
                sc[r] = F::scales(wp[r]);
            }
            let mut lanes = [zero; 8];
            for j in 0..QK_K / 32 {
                let mut u = [zero; MR];
                let mut cs = [zero; MR];
                for r in 0..MR {
                    u[r] = F::codes(wp[r], j);
                    cs[r] = chunk_scales(sc[r].scales, j);
                }
                for c in 0..NC {
                    let y = load256(xp[c].add(off::Q8_K_QS + 32 * j));
                    for r in 0..MR {
                        // codes <= 63 and |y| <= 127: the pair sums fit in i16 unsaturated.
                        let p16 = _mm256_maddubs_epi16(u[r], y);
                        lanes[r * NC + c] = I::madd_acc(lanes[r * NC + c], p16, cs[r]);
                    }
                }
            }
            // Activation bsums against the per-row bias coefficients.
            let mut bias = [zero; 8];
            for c in 0..NC {
                let bsums = load256(xp[c].add(off::Q8_K_BSUMS));
                for r in 0..MR {
                    bias[r * NC + c] = _mm256_madd_epi16(bsums, sc[r].bias);
                }
            }
            if !F::HAS_MIN {
                for p in 0..8 {
                    lanes[p] = _mm256_sub_epi32(lanes[p], bias[p]);
                }
            }
            let dmin = if F::HAS_MIN {
                row_lanes::<MR, NC>(wp.map(|p| read_u16(p.add(F::D_AT + 2))))
            } else {
                _mm256_setzero_ps()
            };
            term_k::<F>(
                &lanes,
                &bias,
                row_lanes::<MR, NC>(wp.map(|p| read_u16(p.add(F::D_AT)))),
                dmin,
                col_lanes::<NC>(xs.add(s * NC)),
            )
        });
        to_array(acc)
    }

    #[inline(always)]
    unsafe fn row(&self, w: *const u8, x: *const u8, xs: *const f32) -> f32 {
        let n = self.blocks;
        let zero = _mm256_setzero_si256();
        let mut acc = _mm256_setzero_ps();
        for s in (0..n).step_by(8) {
            // Only the valid super-blocks are computed (each is a lot of work); the other lanes
            // stay zero, with zero scales.
            let mut lanes = [zero; 8];
            let mut bias = [zero; 8];
            let mut d = [[0u16; 8]; 2];
            for j in 0..(n - s).min(8) {
                let wp = w.add((s + j) * F::BYTES);
                (lanes[j], bias[j]) = super_block_sums::<I, F>(wp, x.add((s + j) * size::Q8_K));
                d[0][j] = read_u16(wp.add(F::D_AT));
                if F::HAS_MIN {
                    d[1][j] = read_u16(wp.add(F::D_AT + 2));
                }
            }
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(d[0].as_ptr() as *const __m128i));
            let dmin = _mm256_cvtph_ps(_mm_loadu_si128(d[1].as_ptr() as *const __m128i));
            let dx = _mm256_loadu_ps(xs.add(s));
            acc = _mm256_add_ps(acc, term_k::<F>(&lanes, &bias, dw, dmin, dx));
        }
        tree8_horizontal(acc)
    }
}

// ---------------------------------------------------------------------------------------------

/// Float weights × activations of the same type, FMA in `f32` lanes.
pub struct TileF<F> {
    k: usize,
    _p: PhantomData<F>,
}

impl<F: FmtF> TileF<F> {
    pub fn new(k: usize) -> Self {
        TileF { k, _p: PhantomData }
    }
}

/// Sum of the eight lanes.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `Σ w[i] x[i]` for `i` in `from..k`, one element at a time (the tails of float rows).
#[inline(always)]
unsafe fn float_tail<F: FmtF>(w: *const u8, x: *const u8, from: usize, k: usize) -> f32 {
    let mut tail = 0.0f32;
    for i in from..k {
        tail += F::load1(w.add(i * F::WIDTH)) * F::load1(x.add(i * F::WIDTH));
    }
    tail
}

impl<F: FmtF> Kernel for TileF<F> {
    const X_PLANES: usize = 0;

    fn blocks(&self) -> usize {
        self.k
    }

    #[inline(always)]
    unsafe fn x_scales<const NC: usize>(&self, _x: &[*const u8; NC], _xs: *mut f32) {}

    #[inline(always)]
    unsafe fn tile<const MR: usize, const NC: usize>(
        &self,
        w: &[*const u8; MR],
        x: &[*const u8; NC],
        _xs: *const f32,
    ) -> [f32; 8] {
        let mut acc = [_mm256_setzero_ps(); 8];
        let main = self.k / 8 * 8;
        for i in (0..main).step_by(8) {
            let at = i * F::WIDTH;
            let mut wv = [_mm256_setzero_ps(); MR];
            for r in 0..MR {
                wv[r] = F::load8(w[r].add(at));
            }
            for c in 0..NC {
                let xv = F::load8(x[c].add(at));
                for r in 0..MR {
                    acc[r * NC + c] = _mm256_fmadd_ps(wv[r], xv, acc[r * NC + c]);
                }
            }
        }
        let mut out = [0.0f32; 8];
        for r in 0..MR {
            for c in 0..NC {
                out[r * NC + c] = hsum(acc[r * NC + c]) + float_tail::<F>(w[r], x[c], main, self.k);
            }
        }
        out
    }

    #[inline(always)]
    unsafe fn row(&self, w: *const u8, x: *const u8, _xs: *const f32) -> f32 {
        // Four independent accumulators keep the FMA pipes busy on a single row.
        let mut acc = [_mm256_setzero_ps(); 4];
        let main = self.k / 32 * 32;
        for i in (0..main).step_by(32) {
            for (j, a) in acc.iter_mut().enumerate() {
                let at = (i + 8 * j) * F::WIDTH;
                *a = _mm256_fmadd_ps(F::load8(w.add(at)), F::load8(x.add(at)), *a);
            }
        }
        let mut i = main;
        while i + 8 <= self.k {
            let at = i * F::WIDTH;
            acc[0] = _mm256_fmadd_ps(F::load8(w.add(at)), F::load8(x.add(at)), acc[0]);
            i += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        hsum(v) + float_tail::<F>(w, x, i, self.k)
    }
}

// ---------------------------------------------------------------------------------------------

/// Scale planes for up to four columns: on the stack when small (the usual case: no allocation
/// per call), on the heap otherwise. Left uninitialized: the kernels write before they read.
const STACK_SCALES: usize = 4096;

/// Covers `y[r * m + c]` for `r < n_rows`, `c < m`: a single activation row (or a last single
/// column) with [`Kernel::row`]; with the many-column forms, columns in groups of sixteen
/// (while at least twelve are left) and eight (a last group of five to seven, or of twelve to
/// fifteen, repeats its last column); otherwise, and for the last two to four
/// columns, `2×4` tiles (three columns repeat one) and `4×2` tiles. Rows past the end of a tile
/// repeat the last row (computed, not stored), so every tile reads only real rows.
///
/// # Safety
/// `w` holds `n_rows` rows of `w_stride` bytes and `x` holds `m` rows of `x_stride` bytes, both
/// whole rows of the `k` the kernel was built for; `y.len() == n_rows * m`; the CPU supports the
/// kernel's instruction set.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub unsafe fn drive<K: Kernel>(
    kern: &K,
    n_rows: usize,
    w: &[u8],
    w_stride: usize,
    m: usize,
    x: &[u8],
    x_stride: usize,
    y: &mut [f32],
) {
    let need = K::X_PLANES * plane_len(kern.blocks(), 4);
    let mut stack = std::mem::MaybeUninit::<[f32; STACK_SCALES]>::uninit();
    let mut heap = Vec::<f32>::new();
    let xs: *mut f32 = if need <= STACK_SCALES {
        stack.as_mut_ptr() as *mut f32
    } else {
        heap.reserve_exact(need);
        heap.as_mut_ptr()
    };
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    // Repacked activations for the eight-column form: allocated (uninitialized) only if used.
    let mut wide = Vec::<u8>::new();
    if (K::WIDE && m >= 5) || (K::WIDE16 && m >= 12) {
        wide.reserve_exact(kern.wide_bytes());
    }
    let mut c0 = 0;
    while c0 < m {
        let left = m - c0;
        let g = Grid { n_rows, w: wp, w_stride, m, x: xp, x_stride, c0, cols: left.min(4) };
        match left {
            1 => {
                let xr = xp.add(c0 * x_stride);
                kern.x_scales(&[xr], xs);
                for r in 0..n_rows {
                    y[r * m + c0] = kern.row(wp.add(r * w_stride), xr, xs);
                }
            }
            2 => g.run::<K, 4, 2>(kern, xs, y),
            3 | 4 => g.run::<K, 2, 4>(kern, xs, y),
            _ if K::WIDE16 && left >= 12 => {
                let cols = left.min(16);
                let xc: [*const u8; 16] = std::array::from_fn(|c| xp.add((c0 + c.min(cols - 1)) * x_stride));
                kern.wide16_prep(&xc, wide.as_mut_ptr());
                for r in 0..n_rows {
                    let out = kern.wide16_row(wp.add(r * w_stride), wide.as_ptr());
                    y[r * m + c0..r * m + c0 + cols].copy_from_slice(&out[..cols]);
                }
                c0 += cols;
                continue;
            }
            _ if K::WIDE => {
                let cols = left.min(8);
                let xc: [*const u8; 8] = std::array::from_fn(|c| xp.add((c0 + c.min(cols - 1)) * x_stride));
                kern.wide_prep(&xc, wide.as_mut_ptr());
                for r in 0..n_rows {
                    let out = kern.wide_row(wp.add(r * w_stride), wide.as_ptr());
                    y[r * m + c0..r * m + c0 + cols].copy_from_slice(&out[..cols]);
                }
                c0 += cols;
                continue;
            }
            _ => g.run::<K, 2, 4>(kern, xs, y),
        }
        c0 += left.min(4);
    }
}

/// One group of columns `c0..c0 + cols` over all the rows.
struct Grid {
    n_rows: usize,
    w: *const u8,
    w_stride: usize,
    m: usize,
    x: *const u8,
    x_stride: usize,
    c0: usize,
    cols: usize,
}

impl Grid {
    #[inline(always)]
    unsafe fn run<K: Kernel, const MR: usize, const NC: usize>(&self, kern: &K, xs: *mut f32, y: &mut [f32]) {
        let xp: [*const u8; NC] = std::array::from_fn(|c| self.x.add((self.c0 + c.min(self.cols - 1)) * self.x_stride));
        kern.x_scales(&xp, xs);
        let mut r0 = 0;
        while r0 < self.n_rows {
            let rows = (self.n_rows - r0).min(MR);
            let wp: [*const u8; MR] = std::array::from_fn(|r| self.w.add((r0 + r.min(rows - 1)) * self.w_stride));
            let out = kern.tile::<MR, NC>(&wp, &xp, xs);
            for r in 0..rows {
                for c in 0..NC.min(self.cols) {
                    y[(r0 + r) * self.m + self.c0 + c] = out[r * NC + c];
                }
            }
            r0 += MR;
        }
    }
}
