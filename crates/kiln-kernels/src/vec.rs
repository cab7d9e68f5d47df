//! f32 vector primitives for attention: dot product and `y += a·x`, with an AVX2+FMA path
//! chosen at run time. Attention over a long prompt spends billions of these operations, so
//! the default (SSE2-only) auto-vectorization is not enough.

use std::sync::OnceLock;

type DotFn = unsafe fn(&[f32], &[f32]) -> f32;
type AxpyFn = unsafe fn(f32, &[f32], &mut [f32]);
type MatFn = unsafe fn(&MatShape, &[f32], &[f32], &mut [f32]);

struct VecKernels {
    dot: DotFn,
    axpy: AxpyFn,
    gemm_nt: MatFn,
    gemm_nn_acc: MatFn,
}

/// Shape of a small f32 matrix product: `rows` × `inner` times `inner` × `cols`.
#[derive(Clone, Copy, Debug)]
pub struct MatShape {
    pub rows: usize,
    pub inner: usize,
    pub cols: usize,
}

fn kernels() -> &'static VecKernels {
    static K: OnceLock<VecKernels> = OnceLock::new();
    K.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return VecKernels { dot: x86::dot, axpy: x86::axpy, gemm_nt: x86::gemm_nt, gemm_nn_acc: x86::gemm_nn_acc };
        }
        VecKernels { dot: dot_scalar, axpy: axpy_scalar, gemm_nt: gemm_nt_scalar, gemm_nn_acc: gemm_nn_acc_scalar }
    })
}

/// `Σ a[i]·b[i]` over the common length.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: the selected function's CPU features were detected at run time.
    unsafe { (kernels().dot)(&a[..n], &b[..n]) }
}

/// `y[i] += a·x[i]` over the common length.
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    // SAFETY: as in `dot`.
    unsafe { (kernels().axpy)(a, &x[..n], &mut y[..n]) }
}

/// `x *= s`
#[inline]
pub fn scale(x: &mut [f32], s: f32) {
    for v in x.iter_mut() {
        *v *= s;
    }
}

/// `c[r][j] = Σ_k a[r][k]·b[j][k]`: `a` is `rows × inner`, `b` is `cols × inner` (both
/// row-major), `c` is `rows × cols`. Attention scores: queries times keys.
pub fn gemm_nt(shape: &MatShape, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= shape.rows * shape.inner && b.len() >= shape.cols * shape.inner);
    assert!(c.len() >= shape.rows * shape.cols);
    // SAFETY: CPU features detected at run time; lengths checked above.
    unsafe { (kernels().gemm_nt)(shape, a, b, c) }
}

/// `c[r][j] += Σ_k a[r][k]·b[k][j]`: `a` is `rows × inner`, `b` is `inner × cols`, `c` is
/// `rows × cols`. Attention output: probabilities times values.
pub fn gemm_nn_acc(shape: &MatShape, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= shape.rows * shape.inner && b.len() >= shape.inner * shape.cols);
    assert!(c.len() >= shape.rows * shape.cols);
    // SAFETY: as in `gemm_nt`.
    unsafe { (kernels().gemm_nn_acc)(shape, a, b, c) }
}

fn gemm_nt_scalar(s: &MatShape, a: &[f32], b: &[f32], c: &mut [f32]) {
    for r in 0..s.rows {
        for j in 0..s.cols {
            c[r * s.cols + j] = dot_scalar(&a[r * s.inner..(r + 1) * s.inner], &b[j * s.inner..(j + 1) * s.inner]);
        }
    }
}

fn gemm_nn_acc_scalar(s: &MatShape, a: &[f32], b: &[f32], c: &mut [f32]) {
    for r in 0..s.rows {
        for k in 0..s.inner {
            let w = a[r * s.inner + k];
            if w != 0.0 {
                axpy_scalar(w, &b[k * s.cols..(k + 1) * s.cols], &mut c[r * s.cols..(r + 1) * s.cols]);
            }
        }
    }
}

/// The reference: eight partial sums, so the order matches the SIMD path's lanes closely.
fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

fn axpy_scalar(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::MatShape;
    use std::arch::x86_64::*;

    /// # Safety
    /// Needs AVX2 and FMA; `a` and `b` of equal length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
            i += 16;
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
        let acc = _mm256_add_ps(acc0, acc1);
        let hi = _mm256_extractf128_ps(acc, 1);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(acc), hi);
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
        let mut sum = _mm_cvtss_f32(s1);
        while i < n {
            sum += *pa.add(i) * *pb.add(i);
            i += 1;
        }
        sum
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)))
    }

    /// Scores of 4 query rows against 2 keys at a time: each loaded vector feeds several
    /// FMAs (8 accumulators), where a plain dot product needs two loads per FMA.
    ///
    /// # Safety
    /// Needs AVX2 and FMA; slices at least as long as the shape says.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_nt(s: &MatShape, a: &[f32], b: &[f32], c: &mut [f32]) {
        let n = s.inner;
        let vec_n = n / 8 * 8;
        let mut r = 0;
        while r < s.rows {
            let nr = (s.rows - r).min(4);
            let mut j = 0;
            while j < s.cols {
                let nj = (s.cols - j).min(2);
                if nr == 4 && nj == 2 {
                    let mut acc = [_mm256_setzero_ps(); 8];
                    let pa = a.as_ptr().add(r * n);
                    let pb = b.as_ptr().add(j * n);
                    let mut k = 0;
                    while k < vec_n {
                        let b0 = _mm256_loadu_ps(pb.add(k));
                        let b1 = _mm256_loadu_ps(pb.add(n + k));
                        for i in 0..4 {
                            let av = _mm256_loadu_ps(pa.add(i * n + k));
                            acc[2 * i] = _mm256_fmadd_ps(av, b0, acc[2 * i]);
                            acc[2 * i + 1] = _mm256_fmadd_ps(av, b1, acc[2 * i + 1]);
                        }
                        k += 8;
                    }
                    for i in 0..4 {
                        for jj in 0..2 {
                            let mut v = hsum(acc[2 * i + jj]);
                            for kk in vec_n..n {
                                v += *pa.add(i * n + kk) * *pb.add(jj * n + kk);
                            }
                            c[(r + i) * s.cols + j + jj] = v;
                        }
                    }
                } else {
                    for i in 0..nr {
                        for jj in 0..nj {
                            c[(r + i) * s.cols + j + jj] =
                                dot(&a[(r + i) * n..(r + i + 1) * n], &b[(j + jj) * n..(j + jj + 1) * n]);
                        }
                    }
                }
                j += nj;
            }
            r += nr;
        }
    }

    /// Output rows 4 at a time over 16 columns held in registers across the whole inner
    /// loop, so the accumulators are loaded and stored once instead of once per term.
    ///
    /// # Safety
    /// Needs AVX2 and FMA; slices at least as long as the shape says.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_nn_acc(s: &MatShape, a: &[f32], b: &[f32], c: &mut [f32]) {
        let (n, m) = (s.inner, s.cols);
        let vec_m = m / 16 * 16;
        let mut r = 0;
        while r < s.rows {
            let nr = (s.rows - r).min(4);
            let pa = a.as_ptr().add(r * n);
            let pc = c.as_mut_ptr().add(r * m);
            let mut j = 0;
            while j < vec_m {
                let mut acc = [_mm256_setzero_ps(); 8];
                for i in 0..nr {
                    acc[2 * i] = _mm256_loadu_ps(pc.add(i * m + j));
                    acc[2 * i + 1] = _mm256_loadu_ps(pc.add(i * m + j + 8));
                }
                for k in 0..n {
                    let pb = b.as_ptr().add(k * m + j);
                    let (b0, b1) = (_mm256_loadu_ps(pb), _mm256_loadu_ps(pb.add(8)));
                    for i in 0..nr {
                        let w = _mm256_set1_ps(*pa.add(i * n + k));
                        acc[2 * i] = _mm256_fmadd_ps(w, b0, acc[2 * i]);
                        acc[2 * i + 1] = _mm256_fmadd_ps(w, b1, acc[2 * i + 1]);
                    }
                }
                for i in 0..nr {
                    _mm256_storeu_ps(pc.add(i * m + j), acc[2 * i]);
                    _mm256_storeu_ps(pc.add(i * m + j + 8), acc[2 * i + 1]);
                }
                j += 16;
            }
            for i in 0..nr {
                for k in 0..n {
                    let w = *pa.add(i * n + k);
                    for jj in vec_m..m {
                        *pc.add(i * m + jj) += w * *b.as_ptr().add(k * m + jj);
                    }
                }
            }
            r += nr;
        }
    }

    /// # Safety
    /// Needs AVX2 and FMA; `x` and `y` of equal length.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len();
        let (px, py) = (x.as_ptr(), y.as_mut_ptr());
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            _mm256_storeu_ps(py.add(i), _mm256_fmadd_ps(av, _mm256_loadu_ps(px.add(i)), _mm256_loadu_ps(py.add(i))));
            i += 8;
        }
        while i < n {
            *py.add(i) += a * *px.add(i);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_products_match_reference() {
        for (rows, inner, cols) in [(1, 1, 1), (4, 8, 2), (5, 19, 3), (9, 64, 33), (13, 256, 17), (3, 7, 40)] {
            let s = MatShape { rows, inner, cols };
            let a: Vec<f32> = (0..rows * inner).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let bt: Vec<f32> = (0..cols * inner).map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0).collect();
            let b: Vec<f32> = (0..inner * cols).map(|i| ((i * 3 % 17) as f32 - 8.0) / 6.0).collect();
            let mut c1 = vec![0f32; rows * cols];
            let mut c2 = vec![0f32; rows * cols];
            gemm_nt(&s, &a, &bt, &mut c1);
            gemm_nt_scalar(&s, &a, &bt, &mut c2);
            for (x, y) in c1.iter().zip(&c2) {
                assert!((x - y).abs() < 1e-4, "nt {rows}x{inner}x{cols}: {x} vs {y}");
            }
            let mut d1: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.01).collect();
            let mut d2 = d1.clone();
            gemm_nn_acc(&s, &a, &b, &mut d1);
            gemm_nn_acc_scalar(&s, &a, &b, &mut d2);
            for (x, y) in d1.iter().zip(&d2) {
                assert!((x - y).abs() < 1e-4, "nn {rows}x{inner}x{cols}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn simd_matches_reference() {
        for n in [0, 1, 7, 8, 9, 16, 63, 64, 256, 257] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 7.0).collect();
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
            assert!((dot(&a, &b) as f64 - exact).abs() < 1e-4, "n {n}");
            assert!((dot_scalar(&a, &b) as f64 - exact).abs() < 1e-4, "n {n}");
            let mut y1 = b.clone();
            let mut y2 = b.clone();
            axpy(0.5, &a, &mut y1);
            axpy_scalar(0.5, &a, &mut y2);
            for (p, q) in y1.iter().zip(&y2) {
                assert!((p - q).abs() < 1e-6);
            }
        }
    }
}
