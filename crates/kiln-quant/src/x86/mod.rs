//! x86 SIMD kernels for two instruction sets: AVX2 (+FMA, F16C), and AVX-512 VNNI (with F, BW,
//! VL), which adds 512-bit row and many-column kernels to the 256-bit ones.
//!
//! The kernels are generic ([`tiles`], [`wide`], [`widek`] over [`isa::Isa`] and the formats in
//! [`formats`]); this module stamps out one `#[target_feature]` entry point per instruction set
//! and weight family, and maps weight types to them. [`quant`] has the activation quantizers.

mod formats;
mod isa;
mod mem;
pub mod quant;
mod tiles;
mod wide;
mod widek;

use crate::GgmlType;
use formats::{Fmt32, FmtF, FmtK};
use tiles::{drive, Kernel, Tile32, TileF, TileK};

/// A validated matmul call: `w` is `n_rows` rows of `w_stride` bytes, `x` is `m` rows of
/// `x_stride` bytes, `y.len() == n_rows * m`, `k` a whole number of blocks and non-zero.
pub struct GemmArgs<'a> {
    pub k: usize,
    pub n_rows: usize,
    pub w: &'a [u8],
    pub w_stride: usize,
    pub m: usize,
    pub x: &'a [u8],
    pub x_stride: usize,
    pub y: &'a mut [f32],
}

/// An entry point. Unsafe to call: the CPU must support the instruction set it was compiled
/// for, and the arguments must be as [`GemmArgs`] describes.
pub type GemmFn = unsafe fn(GemmArgs<'_>);

#[inline(always)]
unsafe fn run<K: Kernel>(kern: &K, a: GemmArgs<'_>) {
    drive(kern, a.n_rows, a.w, a.w_stride, a.m, a.x, a.x_stride, a.y)
}

/// One module of entry points per instruction set, and its table from weight type to entry.
macro_rules! instruction_set {
    ($module:ident, $isa:ty, $features:literal) => {
        pub mod $module {
            use super::*;

            #[target_feature(enable = $features)]
            unsafe fn gemm32<F: Fmt32>(a: GemmArgs<'_>) {
                run(&Tile32::<$isa, F>::new(a.k), a)
            }

            #[target_feature(enable = $features)]
            unsafe fn gemmk<F: FmtK>(a: GemmArgs<'_>) {
                run(&TileK::<$isa, F>::new(a.k), a)
            }

            #[target_feature(enable = $features)]
            unsafe fn gemmf<F: FmtF>(a: GemmArgs<'_>) {
                run(&TileF::<F>::new(a.k), a)
            }

            /// The entry point for weights of type `ty`, if this instruction set has one.
            pub fn gemm(ty: GgmlType) -> Option<GemmFn> {
                use formats as f;
                Some(match ty {
                    GgmlType::Q4_0 => gemm32::<f::Q4_0>,
                    GgmlType::Q4_1 => gemm32::<f::Q4_1>,
                    GgmlType::Q5_0 => gemm32::<f::Q5_0>,
                    GgmlType::Q5_1 => gemm32::<f::Q5_1>,
                    GgmlType::Q8_0 => gemm32::<f::Q8_0>,
                    GgmlType::Q2_K => gemmk::<f::Q2_K>,
                    GgmlType::Q3_K => gemmk::<f::Q3_K>,
                    GgmlType::Q4_K => gemmk::<f::Q4_K>,
                    GgmlType::Q5_K => gemmk::<f::Q5_K>,
                    GgmlType::Q6_K => gemmk::<f::Q6_K>,
                    GgmlType::F32 => gemmf::<f::F32>,
                    GgmlType::F16 => gemmf::<f::F16>,
                    GgmlType::BF16 => gemmf::<f::BF16>,
                    _ => return None,
                })
            }
        }
    };
}

instruction_set!(avx2, isa::Avx2, "avx2,fma,f16c");
instruction_set!(avx512vnni, isa::Avx512Vnni, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");

/// Whether this CPU runs the [`avx2`] entry points.
pub fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// Whether this CPU runs the [`avx512vnni`] entry points.
pub fn has_avx512vnni() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}
