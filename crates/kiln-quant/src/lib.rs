//! Quantized tensor formats of ggml/GGUF: dequantization, activation quantization, and the
//! quantized dot-product / matmul kernels.
//!
//! Weights may be `F32`, `F16`, `BF16`, `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0`, `Q2_K`, `Q3_K`,
//! `Q4_K`, `Q5_K` or `Q6_K` (block layouts in [`blocks`]). A matmul multiplies them with
//! activations quantized to the weight type's [`vec_dot_type`], paired as llama.cpp's CPU
//! backend pairs them, and quantized the way its x86 build does, so the integer parts of every
//! dot product are the ones llama.cpp computes.
//!
//! The kernels come in several implementations: [`scalar`], the readable reference, and SIMD
//! ones chosen once per process at run time ([`kernels`]; see [`dispatch::active`] for the
//! `KILN_KERNELS` override). For quantized weights the SIMD kernels are bit-identical to the
//! reference; for float weights they differ by summation order only.

pub mod blocks;
pub mod dispatch;
pub mod scalar;
pub mod scheme;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use dispatch::Kernels;
pub use kiln_gguf::GgmlType;
pub use scheme::{QuantScheme, TensorRole};

/// Whether `ty` can be a weight type here (has dequantization and matmul kernels).
pub fn is_supported(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q8_0
            | GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
    )
}

/// The type activations are quantized to for a matmul with weights of type `ty`.
///
/// # Panics
/// If `ty` is not [`is_supported`].
pub fn vec_dot_type(ty: GgmlType) -> GgmlType {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => GgmlType::Q8_0,
        GgmlType::Q4_1 | GgmlType::Q5_1 => GgmlType::Q8_1,
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => GgmlType::Q8_K,
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => ty,
        _ => panic!("kiln-quant: {ty} is not a supported weight type"),
    }
}

/// Bytes of a row of `n` elements of type `ty`.
///
/// # Panics
/// If `n` is not a multiple of `ty`'s block size.
pub fn row_bytes(ty: GgmlType, n: usize) -> usize {
    let (bs, size) = layout(ty);
    assert!(n.is_multiple_of(bs), "kiln-quant: a {ty} row of {n} elements is not whole blocks of {bs}");
    n / bs * size
}

/// (elements, bytes) per block, without `GgmlType`'s table search: `gemm` computes row sizes on
/// every call, and calls can be small.
#[inline]
fn layout(ty: GgmlType) -> (usize, usize) {
    use blocks::size;
    match ty {
        GgmlType::F32 => (1, 4),
        GgmlType::F16 | GgmlType::BF16 => (1, 2),
        GgmlType::Q4_0 => (32, size::Q4_0),
        GgmlType::Q4_1 => (32, size::Q4_1),
        GgmlType::Q5_0 => (32, size::Q5_0),
        GgmlType::Q5_1 => (32, size::Q5_1),
        GgmlType::Q8_0 => (32, size::Q8_0),
        GgmlType::Q8_1 => (32, size::Q8_1),
        GgmlType::Q2_K => (256, size::Q2_K),
        GgmlType::Q3_K => (256, size::Q3_K),
        GgmlType::Q4_K => (256, size::Q4_K),
        GgmlType::Q5_K => (256, size::Q5_K),
        GgmlType::Q6_K => (256, size::Q6_K),
        GgmlType::Q8_K => (256, size::Q8_K),
        _ => (ty.block_size(), ty.type_size()),
    }
}

/// Types [`dequantize_row`] reads: the weight types and the activation types.
fn can_dequantize(ty: GgmlType) -> bool {
    is_supported(ty) || matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K)
}

/// Dequantizes `dst.len()` elements of type `ty` from `src`.
///
/// Results equal ggml's `dequantize_row_*` (and the Python `gguf` package's dequantizer) bit
/// for bit. Also reads the activation types `Q8_1` and `Q8_K`.
///
/// # Panics
/// If `src.len() != row_bytes(ty, dst.len())`, or `ty` is not a type it reads.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    scalar::dequantize_row(ty, src, dst)
}

/// Quantizes `src` to type `ty` into `dst`.
///
/// For the activation types (`Q8_0`, `Q8_1`, `Q8_K`, `F16`, `BF16`, `F32`) the bytes are the
/// ones llama.cpp's x86 CPU backend writes for matmul inputs. `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`
/// use ggml's reference (model-file) quantizers; K-quant weights come from
/// [`quantize_weights_row`].
///
/// # Panics
/// If `dst.len() != row_bytes(ty, src.len())`, or `ty` is not one of the types above.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    dispatch::active().quantize_row(ty, src, dst)
}

/// Quantizes one row of model weights to type `ty` into `dst` with ggml's model-file
/// quantizers (what a GGUF's weights hold), as opposed to [`quantize_row`]'s activation ones:
/// `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0` and `Q2_K`…`Q6_K`, byte for byte what
/// `llama-quantize` writes without an importance matrix.
///
/// # Panics
/// If `dst.len() != row_bytes(ty, src.len())`, or `ty` has no weight quantizer here.
pub fn quantize_weights_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    scalar::quantize_weights_row(ty, src, dst)
}

/// `y[r * m + c] = Σ_k W[r][k] · X[c][k]` for `r < n_rows`, `c < m`.
///
/// `w`: `n_rows` rows of `k` elements of type `ty`, contiguous; `x`: `m` rows of `k` elements
/// already in `vec_dot_type(ty)`, contiguous. The output is weight-row-major so that threads
/// splitting the weight rows own disjoint contiguous slices of `y`.
///
/// Quantized activations must be as [`quantize_row`] writes them: quants in `-127..=127` (the
/// SIMD kernels rely on it to avoid saturation) and `Q8_K`'s `bsums` the true sums.
///
/// # Panics
/// If `ty` is not supported, `k` is not whole blocks, `w.len() != n_rows * row_bytes(ty, k)`,
/// `x.len() != m * row_bytes(vec_dot_type(ty), k)` or `y.len() != n_rows * m`.
pub fn gemm(ty: GgmlType, k: usize, n_rows: usize, w: &[u8], m: usize, x: &[u8], y: &mut [f32]) {
    dispatch::active().gemm(ty, k, n_rows, w, m, x, y)
}

/// The dot product of one weight row (`k` elements of type `ty`) with one activation row
/// (`k` elements of `vec_dot_type(ty)`). Panics as [`gemm`] does.
pub fn vec_dot(ty: GgmlType, k: usize, w_row: &[u8], x_row: &[u8]) -> f32 {
    dispatch::active().vec_dot(ty, k, w_row, x_row)
}

/// Which implementation [`gemm`] and [`vec_dot`] use: `"avx512vnni"`, `"avx2"` or `"scalar"`.
pub fn kernel_name() -> &'static str {
    dispatch::active().name()
}

/// The implementations this CPU can run, scalar first, preferred last (for tests and
/// benchmarks that compare them; [`dispatch::by_name`] picks one).
pub fn kernels() -> Vec<&'static Kernels> {
    dispatch::available()
}

/// Panics unless `bytes` holds exactly the `n` elements of type `ty` ([`row_bytes`]).
pub(crate) fn check_row_args(ty: GgmlType, bytes: usize, n: usize) {
    assert!(can_dequantize(ty), "kiln-quant: {ty} rows are not supported");
    let want = row_bytes(ty, n);
    assert!(bytes == want, "kiln-quant: {n} elements of {ty} take {want} bytes, got {bytes}");
}

/// Panics unless the matmul operands have the sizes [`gemm`] documents.
pub(crate) fn check_gemm_args(
    ty: GgmlType,
    k: usize,
    n_rows: usize,
    w_len: usize,
    m: usize,
    x_len: usize,
    y_len: usize,
) {
    assert!(is_supported(ty), "kiln-quant: {ty} is not a supported weight type");
    let (wr, xr) = (row_bytes(ty, k), row_bytes(vec_dot_type(ty), k));
    assert!(w_len == n_rows * wr, "kiln-quant: {n_rows} rows of {k} {ty} take {} bytes, got {w_len}", n_rows * wr);
    assert!(x_len == m * xr, "kiln-quant: {m} activation rows of {k} take {} bytes, got {x_len}", m * xr);
    assert!(y_len == n_rows * m, "kiln-quant: output needs {} floats, got {y_len}", n_rows * m);
}
