//! Matmul kernels generic over the instruction set ([`Isa`]) and the weight format, and the
//! driver that covers a whole `n_rows × m` output with them.
//!
//! Two shapes of work:
//! * Tiles (`m >= 2`): `MR` weight rows against `NC` activation rows, `MR * NC <= 8` dot
//!   products (pair `p = r * NC + c`, one vector lane each). Per block each weight row's block
//!   is decoded once and reused for the `NC` activations, and each activation block is loaded
//!   once for the `MR` rows — that reuse is where the prompt-processing speed comes from.
//!   Shapes `2×4` and `4×2`.
//! * Rows (`m = 1`, generation): one weight row at a time, eight consecutive blocks per step
//!   (lane `j` for block `8i + j`). Walking a single row keeps the weight stream sequential,
//!   which the hardware prefetchers serve far better than several interleaved row streams.
//!
//! Exactness: for the quantized formats every block's integer sum is reduced exactly (the eight
//! `i32` lanes of its vector summed into one lane), and only then do the float operations of the
//! scalar reference run, lane-wise and without fused multiply-adds: block `b`'s term goes into
//! partial sum `b % 8`, and the eight partial sums are combined as
//! `((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))`. Tiles keep the eight partial sums in
//! eight vectors (lanes are pairs), rows in the eight lanes of one vector (lanes are blocks);
//! both reproduce [`crate::scalar`] bit for bit. Float weights accumulate with FMA in `f32`
//! lanes instead.

#[cfg(target_arch = "x86")]
use std::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::formats::{load256, Fmt32, FmtF, FmtK};
use super::isa::Isa;
use crate::blocks::{off, size, QK, QK_K};
use std::marker::PhantomData;

/// A matmul kernel for one weight format on one instruction set.
///
/// # Safety (both methods)
/// The pointers point to whole rows (of the `k` the kernel was built for) inside live slices,
/// and the CPU supports the kernel's instruction set.
pub trait Kernel {
    /// `out[r * NC + c] = dot(w[r], x[c])`.
    unsafe fn tile<const MR: usize, const NC: usize>(
        &self,
        w: &[*const u8; MR],
        x: &[*const u8; NC],
    ) -> [f32; 8];

    /// `dot(w, x)` for one weight row.
    unsafe fn row(&self, w: *const u8, x: *const u8) -> f32;
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

/// `((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))`, lane-wise.
#[inline(always)]
unsafe fn tree8_vertical(a: &[__m256; 8]) -> __m256 {
    let s01 = _mm256_add_ps(a[0], a[1]);
    let s23 = _mm256_add_ps(a[2], a[3]);
    let s45 = _mm256_add_ps(a[4], a[5]);
    let s67 = _mm256_add_ps(a[6], a[7]);
    _mm256_add_ps(_mm256_add_ps(s01, s23), _mm256_add_ps(s45, s67))
}

/// The same tree across the eight lanes of `v` (float addition commutes exactly).
#[inline(always)]
unsafe fn tree8_horizontal(v: __m256) -> f32 {
    let pairs = _mm256_add_ps(v, _mm256_permute_ps::<0b10_11_00_01>(v));
    let quads = _mm256_add_ps(pairs, _mm256_permute_ps::<0b01_00_11_10>(pairs));
    let all = _mm256_add_ps(quads, _mm256_permute2f128_ps::<0x01>(quads, quads));
    _mm256_cvtss_f32(all)
}

/// Eight `f16` bit patterns widened to `f32` lanes.
#[inline(always)]
unsafe fn f16x8(h: [u16; 8]) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr() as *const __m128i))
}

#[inline(always)]
unsafe fn read_u16(p: *const u8) -> u16 {
    u16::from_le(std::ptr::read_unaligned(p as *const u16))
}

#[inline(always)]
unsafe fn read_f32(p: *const u8) -> f32 {
    f32::from_bits(u32::from_le(std::ptr::read_unaligned(p as *const u32)))
}

/// Per-pair lanes of per-row values: lane `r * NC + c` gets `rows[r]` (unused lanes 0).
#[inline(always)]
fn by_row<T: Copy + Default, const MR: usize, const NC: usize>(rows: [T; MR]) -> [T; 8] {
    let mut a = [T::default(); 8];
    for r in 0..MR {
        for c in 0..NC {
            a[r * NC + c] = rows[r];
        }
    }
    a
}

/// Per-pair lanes of per-column values: lane `r * NC + c` gets `cols[c]` (unused lanes 0).
#[inline(always)]
fn by_col<T: Copy + Default, const MR: usize, const NC: usize>(cols: [T; NC]) -> [T; 8] {
    let mut a = [T::default(); 8];
    for r in 0..MR {
        for c in 0..NC {
            a[r * NC + c] = cols[c];
        }
    }
    a
}

/// The first `valid` of eight values (the rest 0): the scales of a row step's blocks, where
/// lanes past the end of the row must contribute exactly nothing.
#[inline(always)]
fn first<T: Copy + Default>(valid: usize, v: [T; 8]) -> [T; 8] {
    let mut a = [T::default(); 8];
    a[..valid].copy_from_slice(&v[..valid]);
    a
}

#[inline(always)]
unsafe fn to_array(v: __m256) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), v);
    out
}

/// Evaluates the term vector `$step` for blocks `$b` in `0..$n`, adding block `b`'s term into
/// partial sum `b % 8`, and gives the tree of the partial sums. Written as whole groups of eight
/// plus a tail so that the partial sums can stay in registers. A macro rather than a function
/// taking a closure: a closure is compiled without the caller's target features, and its
/// intrinsics would not inline.
macro_rules! partial_sums {
    ($n:expr, |$b:ident| $step:expr) => {{
        let n: usize = $n;
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut base = 0;
        while base + 8 <= n {
            for j in 0..8 {
                let $b = base + j;
                acc[j] = _mm256_add_ps(acc[j], $step);
            }
            base += 8;
        }
        for j in 0..n - base {
            let $b = base + j;
            acc[j] = _mm256_add_ps(acc[j], $step);
        }
        tree8_vertical(&acc)
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
}

/// The float term of eight blocks (or pairs): `(d_w * d_x) * sumi (+ m_w * s_x)`.
#[inline(always)]
unsafe fn term32<F: Fmt32>(sums: __m256i, d: ([u16; 8], [u16; 8]), m: ([u16; 8], [u16; 8])) -> __m256 {
    let mut t = _mm256_mul_ps(_mm256_mul_ps(f16x8(d.0), f16x8(d.1)), _mm256_cvtepi32_ps(sums));
    if F::HAS_MIN {
        t = _mm256_add_ps(t, _mm256_mul_ps(f16x8(m.0), f16x8(m.1)));
    }
    t
}

/// The `f16` at byte `at` of each block (0 for formats without the field: `at` is then past
/// the scales, and the values are unused).
#[inline(always)]
unsafe fn f16_fields<const N: usize>(blocks: [*const u8; N], at: usize, present: bool) -> [u16; N] {
    if present {
        blocks.map(|p| read_u16(p.add(at)))
    } else {
        [0; N]
    }
}

impl<I: Isa, F: Fmt32> Kernel for Tile32<I, F> {
    #[inline(always)]
    unsafe fn tile<const MR: usize, const NC: usize>(
        &self,
        w: &[*const u8; MR],
        x: &[*const u8; NC],
    ) -> [f32; 8] {
        let zero = _mm256_setzero_si256();
        let acc = partial_sums!(self.blocks, |b| {
            let wp = w.map(|p| p.add(b * F::BYTES));
            let xp = x.map(|p| p.add(b * F::ACT_BYTES));
            let mut wv = [I::prep_w::<F>(zero); MR];
            for r in 0..MR {
                wv[r] = I::prep_w::<F>(F::codes::<I>(wp[r]));
            }
            let mut lanes = [zero; 8];
            for c in 0..NC {
                let y = I::prep_y::<F>(load256(xp[c].add(F::ACT_QS)));
                for r in 0..MR {
                    lanes[r * NC + c] = I::dot::<F>(wv[r], y);
                }
            }
            // Scales: weight `d` (and `m`) per row, activation `d` (and `s`) per column.
            term32::<F>(
                reduce8(&lanes),
                (
                    by_row::<_, MR, NC>(f16_fields(wp, 0, true)),
                    by_col::<_, MR, NC>(f16_fields(xp, 0, true)),
                ),
                (
                    by_row::<_, MR, NC>(f16_fields(wp, 2, F::HAS_MIN)),
                    by_col::<_, MR, NC>(f16_fields(xp, 2, F::HAS_MIN)),
                ),
            )
        });
        to_array(acc)
    }

    #[inline(always)]
    unsafe fn row(&self, w: *const u8, x: *const u8) -> f32 {
        let n = self.blocks;
        let mut acc = _mm256_setzero_ps();
        for b in (0..n).step_by(8) {
            let valid = (n - b).min(8);
            // Lanes past the end repeat the last block (so every read is in bounds) and get
            // zero scales (so they add exactly nothing).
            let blk: [usize; 8] = std::array::from_fn(|j| (b + j).min(n - 1));
            let wp = blk.map(|i| w.add(i * F::BYTES));
            let xp = blk.map(|i| x.add(i * F::ACT_BYTES));
            let mut lanes = [_mm256_setzero_si256(); 8];
            for j in 0..8 {
                let y = I::prep_y::<F>(load256(xp[j].add(F::ACT_QS)));
                lanes[j] = I::dot::<F>(I::prep_w::<F>(F::codes::<I>(wp[j])), y);
            }
            let t = term32::<F>(
                reduce8(&lanes),
                (first(valid, f16_fields(wp, 0, true)), first(valid, f16_fields(xp, 0, true))),
                (
                    first(valid, f16_fields(wp, 2, F::HAS_MIN)),
                    first(valid, f16_fields(xp, 2, F::HAS_MIN)),
                ),
            );
            acc = _mm256_add_ps(acc, t);
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
    let pick = _mm256_set_epi64x(
        0x0302_0302_0302_0302,
        0x0302_0302_0302_0302,
        0x0100_0100_0100_0100,
        0x0100_0100_0100_0100,
    );
    _mm256_shuffle_epi8(pair, pick)
}

/// The float term of eight super-blocks (or pairs): `(d_w * d_x) * sumi`, minus
/// `(dmin_w * d_x) * summ` for formats with a min (whose `bias` lanes hold `summ`; the other
/// formats' bias is already folded into `lanes`).
#[inline(always)]
unsafe fn term_k<F: FmtK>(
    lanes: &[__m256i; 8],
    bias: &[__m256i; 8],
    dw: [u16; 8],
    dmin: [u16; 8],
    dx: [f32; 8],
) -> __m256 {
    let dx = _mm256_loadu_ps(dx.as_ptr());
    let sumi = _mm256_cvtepi32_ps(reduce8(lanes));
    let mut t = _mm256_mul_ps(_mm256_mul_ps(f16x8(dw), dx), sumi);
    if F::HAS_MIN {
        let summ = _mm256_cvtepi32_ps(reduce8(bias));
        t = _mm256_sub_ps(t, _mm256_mul_ps(_mm256_mul_ps(f16x8(dmin), dx), summ));
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
    #[inline(always)]
    unsafe fn tile<const MR: usize, const NC: usize>(
        &self,
        w: &[*const u8; MR],
        x: &[*const u8; NC],
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
            term_k::<F>(
                &lanes,
                &bias,
                by_row::<_, MR, NC>(f16_fields(wp, F::D_AT, true)),
                by_row::<_, MR, NC>(f16_fields(wp, F::D_AT + 2, F::HAS_MIN)),
                by_col::<_, MR, NC>(xp.map(|p| read_f32(p))),
            )
        });
        to_array(acc)
    }

    #[inline(always)]
    unsafe fn row(&self, w: *const u8, x: *const u8) -> f32 {
        let n = self.blocks;
        let zero = _mm256_setzero_si256();
        let mut acc = _mm256_setzero_ps();
        for s in (0..n).step_by(8) {
            let valid = (n - s).min(8);
            // Only the valid super-blocks are computed (each is a lot of work); the other
            // lanes stay zero, with zero scales.
            let mut lanes = [zero; 8];
            let mut bias = [zero; 8];
            let mut dw = [0u16; 8];
            let mut dmin = [0u16; 8];
            let mut dx = [0.0f32; 8];
            for j in 0..valid {
                let (wp, xp) = (w.add((s + j) * F::BYTES), x.add((s + j) * size::Q8_K));
                (lanes[j], bias[j]) = super_block_sums::<I, F>(wp, xp);
                dw[j] = read_u16(wp.add(F::D_AT));
                if F::HAS_MIN {
                    dmin[j] = read_u16(wp.add(F::D_AT + 2));
                }
                dx[j] = read_f32(xp);
            }
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
    #[inline(always)]
    unsafe fn tile<const MR: usize, const NC: usize>(
        &self,
        w: &[*const u8; MR],
        x: &[*const u8; NC],
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
    unsafe fn row(&self, w: *const u8, x: *const u8) -> f32 {
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

/// Covers `y[r * m + c]` for `r < n_rows`, `c < m`: a single activation row (or a last single
/// column) with [`Kernel::row`], otherwise columns in groups of four with `2×4` tiles (a last
/// group of three reuses one column twice) and a last pair with `4×2` tiles. Rows past the end
/// of a tile repeat the last row (computed, not stored), so every tile reads only real rows.
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
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut c0 = 0;
    while c0 < m {
        let left = m - c0;
        let g = Grid { n_rows, w: wp, w_stride, m, x: xp, x_stride, c0, cols: left.min(4) };
        match left {
            1 => {
                let xr = xp.add(c0 * x_stride);
                for r in 0..n_rows {
                    y[r * m + c0] = kern.row(wp.add(r * w_stride), xr);
                }
            }
            2 => g.run::<K, 4, 2>(kern, y),
            _ => g.run::<K, 2, 4>(kern, y),
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
    unsafe fn run<K: Kernel, const MR: usize, const NC: usize>(&self, kern: &K, y: &mut [f32]) {
        let xp: [*const u8; NC] =
            std::array::from_fn(|c| self.x.add((self.c0 + c.min(self.cols - 1)) * self.x_stride));
        let mut r0 = 0;
        while r0 < self.n_rows {
            let rows = (self.n_rows - r0).min(MR);
            let wp: [*const u8; MR] =
                std::array::from_fn(|r| self.w.add((r0 + r.min(rows - 1)) * self.w_stride));
            let out = kern.tile::<MR, NC>(&wp, &xp);
            for r in 0..rows {
                for c in 0..NC.min(self.cols) {
                    y[(r0 + r) * self.m + self.c0 + c] = out[r * NC + c];
                }
            }
            r0 += MR;
        }
    }
}
