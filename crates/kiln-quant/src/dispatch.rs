//! Choosing the kernels once per process.
//!
//! A [`Kernels`] value is one implementation of the matmul entry points: the scalar reference,
//! or a SIMD instruction set. The SIMD ones can only be obtained after checking that this CPU
//! supports them, which is what makes calling their `#[target_feature]` code sound.

use std::sync::OnceLock;

use crate::{check_gemm_args, scalar, GgmlType};

#[cfg(target_arch = "x86_64")]
use crate::x86;

/// A table from weight type to matmul entry point; `None` means "use the scalar reference".
#[cfg(target_arch = "x86_64")]
type Table = Option<fn(GgmlType) -> Option<x86::GemmFn>>;
/// No SIMD kernels for other architectures yet: only the scalar reference.
#[cfg(not(target_arch = "x86_64"))]
type Table = Option<std::convert::Infallible>;

/// One implementation of the kernels (see the crate docs for the functions' contracts).
pub struct Kernels {
    name: &'static str,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    table: Table,
}

static SCALAR: Kernels = Kernels { name: "scalar", table: None };

#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = Kernels { name: "avx2", table: Some(x86::avx2::gemm) };

#[cfg(target_arch = "x86_64")]
static AVX512VNNI: Kernels = Kernels { name: "avx512vnni", table: Some(x86::avx512vnni::gemm) };

impl Kernels {
    /// `"scalar"`, `"avx2"` or `"avx512vnni"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// [`crate::gemm`] with these kernels (the free function's arguments, plus `self`).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(&self, ty: GgmlType, k: usize, n_rows: usize, w: &[u8], m: usize, x: &[u8], y: &mut [f32]) {
        check_gemm_args(ty, k, n_rows, w.len(), m, x.len(), y.len());
        if k == 0 || n_rows == 0 || m == 0 {
            y.fill(0.0);
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(f) = self.table.and_then(|table| table(ty)) {
            let args = x86::GemmArgs {
                k,
                n_rows,
                w,
                w_stride: crate::row_bytes(ty, k),
                m,
                x,
                x_stride: crate::row_bytes(crate::vec_dot_type(ty), k),
                y,
            };
            // SAFETY: `self` is a SIMD table only if it came out of `available()`, which checked
            // that this CPU has the instruction set; the arguments were validated above.
            unsafe { f(args) };
            return;
        }
        scalar::gemm(ty, k, n_rows, w, m, x, y)
    }

    /// [`crate::quantize_row`] with these kernels (the activation types have SIMD versions,
    /// bit-identical to the scalar ones).
    pub fn quantize_row(&self, ty: GgmlType, src: &[f32], dst: &mut [u8]) {
        #[cfg(target_arch = "x86_64")]
        if self.table.is_some() && x86::quant::handles(ty) {
            crate::check_row_args(ty, dst.len(), src.len());
            // SAFETY: a SIMD table only comes out of `available()`, which checked that this CPU
            // has AVX2, FMA and F16C (every x86 set includes them); lengths checked above.
            unsafe { x86::quant::quantize_row(ty, src, dst) };
            return;
        }
        scalar::quantize_row(ty, src, dst)
    }

    /// [`crate::vec_dot`] with these kernels.
    pub fn vec_dot(&self, ty: GgmlType, k: usize, w_row: &[u8], x_row: &[u8]) -> f32 {
        let mut y = [0.0f32];
        self.gemm(ty, k, 1, w_row, 1, x_row, &mut y);
        y[0]
    }
}

/// The implementations this CPU can run, the scalar reference first and the preferred last.
pub fn available() -> Vec<&'static Kernels> {
    #[allow(unused_mut)]
    let mut out = vec![&SCALAR];
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx2() {
            out.push(&AVX2);
        }
        if x86::has_avx512vnni() {
            out.push(&AVX512VNNI);
        }
    }
    out
}

/// The implementation called `name`, if this CPU can run it.
pub fn by_name(name: &str) -> Option<&'static Kernels> {
    available().into_iter().find(|k| k.name == name)
}

/// The implementation the crate-level functions use: the one named by the environment variable
/// `KILN_KERNELS` (`scalar`, `avx2`, `avx512vnni`) if set and runnable here, otherwise the best
/// one this CPU supports. Chosen once per process.
pub fn active() -> &'static Kernels {
    static ACTIVE: OnceLock<&'static Kernels> = OnceLock::new();
    ACTIVE.get_or_init(|| {
        let wanted = std::env::var("KILN_KERNELS").ok();
        wanted.as_deref().and_then(by_name).unwrap_or_else(|| *available().last().expect("scalar is always available"))
    })
}
