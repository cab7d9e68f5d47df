//! Matrix products of quantized weights with f32 activations, spread over the pool.
//!
//! By far most of the time of a forward pass is spent here. Activations are first quantized
//! to the weight format's partner type (as llama.cpp does, which keeps the logits close to
//! its own), then the weight rows are split into chunks that threads take dynamically.

use crate::attention::SyncPtr;
use crate::pool::ThreadPool;
use kiln_gguf::GgmlType;

/// A weight matrix as stored in the file: `rows` rows of `cols` elements of type `ty`,
/// row-major (ggml's `ne0 = cols`, `ne1 = rows`).
#[derive(Clone, Copy, Debug)]
pub struct QMatrix<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

impl<'a> QMatrix<'a> {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        kiln_quant::row_bytes(self.ty, self.cols)
    }

    /// The bytes of row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }

    /// Dequantizes row `r` into `out` (`cols` values): embedding lookups.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        kiln_quant::dequantize_row(self.ty, self.row(r), out);
    }
}

/// Reusable buffers of [`matmul`], so the per-token loop allocates nothing.
#[derive(Default)]
pub struct MatmulScratch {
    quantized: Vec<u8>,
    transposed: Vec<f32>,
}

/// Weight rows per task for a product with `m` activation rows: enough work per task to
/// amortise the hand-out, small enough that both threads finish together.
fn rows_per_task(rows: usize, m: usize, n_threads: usize) -> usize {
    // A generation step (m = 1) over a small matrix lasts microseconds: one task per thread
    // keeps the hand-out cost down. Larger products take four per thread to balance load.
    let tasks_per_thread = if m == 1 { 1 } else { 4 };
    let per_thread = rows.div_ceil(n_threads * tasks_per_thread);
    let min = if m == 1 { 16 } else { 4 };
    per_thread.max(min).min(rows.max(1))
}

/// `y = x · Wᵀ`: `x` is `[m][w.cols]`, `y` is `[m][w.rows]`.
pub fn matmul(pool: &ThreadPool, w: &QMatrix, x: &[f32], m: usize, y: &mut [f32], scratch: &mut MatmulScratch) {
    assert_eq!(x.len(), m * w.cols, "activation shape");
    assert_eq!(y.len(), m * w.rows, "output shape");
    let act_ty = kiln_quant::vec_dot_type(w.ty);
    let act_row = kiln_quant::row_bytes(act_ty, w.cols);
    scratch.quantized.resize(m * act_row, 0);
    {
        let q_ptr = SyncPtr(scratch.quantized.as_mut_ptr());
        pool.for_chunks(m, 8, |rows| {
            for r in rows {
                // SAFETY: each activation row is quantized into its own disjoint byte range.
                let dst = unsafe { std::slice::from_raw_parts_mut(q_ptr.get().add(r * act_row), act_row) };
                kiln_quant::quantize_row(act_ty, &x[r * w.cols..(r + 1) * w.cols], dst);
            }
        });
    }
    let xq = &scratch.quantized[..];
    let w_row = w.row_bytes();
    let chunk = rows_per_task(w.rows, m, pool.n_threads());
    let n_tasks = w.rows.div_ceil(chunk);
    // The kernel writes weight-row-major `[rows][m]`. For m = 1 that is already `y`; else
    // each task writes its rows into its own part of `transposed` and then moves them into
    // its columns of `y`, writing contiguous runs (the task's part stays in cache).
    scratch.transposed.resize(if m == 1 { 0 } else { w.rows * m }, 0.0);
    let staging = SyncPtr(scratch.transposed.as_mut_ptr());
    let y_ptr = SyncPtr(y.as_mut_ptr());
    let n_rows = w.rows;
    pool.run(n_tasks, |task| {
        let r0 = task * chunk;
        let r1 = (r0 + chunk).min(n_rows);
        let w_chunk = &w.data[r0 * w_row..r1 * w_row];
        if m == 1 {
            // SAFETY: tasks own disjoint row ranges `r0..r1`, i.e. disjoint output ranges.
            let dst = unsafe { std::slice::from_raw_parts_mut(y_ptr.get().add(r0), r1 - r0) };
            kiln_quant::gemm(w.ty, w.cols, r1 - r0, w_chunk, 1, xq, dst);
            return;
        }
        // SAFETY: as above, the staging range `r0 * m..r1 * m` belongs to this task alone.
        let part = unsafe { std::slice::from_raw_parts_mut(staging.get().add(r0 * m), (r1 - r0) * m) };
        kiln_quant::gemm(w.ty, w.cols, r1 - r0, w_chunk, m, xq, part);
        let y_base = y_ptr.get();
        for c in 0..m {
            // SAFETY: row c of y, columns r0..r1, belongs to this task alone.
            let dst = unsafe { std::slice::from_raw_parts_mut(y_base.add(c * n_rows + r0), r1 - r0) };
            for (d, src) in dst.iter_mut().zip(part[c..].iter().step_by(m)) {
                *d = *src;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dequantized_f32_product() {
        let pool = ThreadPool::new(2);
        let (rows, cols) = (70, 64);
        let wf: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect();
        let mut data = vec![0u8; kiln_quant::row_bytes(GgmlType::Q8_0, cols) * rows];
        let rb = kiln_quant::row_bytes(GgmlType::Q8_0, cols);
        for r in 0..rows {
            kiln_quant::quantize_row(GgmlType::Q8_0, &wf[r * cols..(r + 1) * cols], &mut data[r * rb..(r + 1) * rb]);
        }
        let w = QMatrix { ty: GgmlType::Q8_0, rows, cols, data: &data };
        let mut deq = vec![0f32; cols];
        for m in [1, 3, 17] {
            let x: Vec<f32> = (0..m * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 10.0).collect();
            let mut y = vec![0f32; m * rows];
            matmul(&pool, &w, &x, m, &mut y, &mut MatmulScratch::default());
            for r in 0..rows {
                w.dequantize_row(r, &mut deq);
                for c in 0..m {
                    let xr = &x[c * cols..(c + 1) * cols];
                    let want: f32 = deq.iter().zip(xr).map(|(a, b)| a * b).sum();
                    let got = y[c * rows + r];
                    // Each activation is rounded to 8 bits, off by at most half a step
                    // (amax / 254) of its 32-block; bound the sum of those errors.
                    let bound: f32 = deq
                        .chunks(32)
                        .zip(xr.chunks(32))
                        .map(|(wb, xb)| {
                            let step = xb.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                            wb.iter().map(|w| w.abs()).sum::<f32>() * step / 2.0
                        })
                        .sum();
                    assert!(
                        (got - want).abs() <= bound * 1.01 + 1e-5,
                        "m {m} r {r} c {c}: {got} vs {want} (bound {bound})"
                    );
                }
            }
        }
    }

    #[test]
    fn task_sizes() {
        assert_eq!(rows_per_task(576, 1, 2), 288);
        assert_eq!(rows_per_task(10, 1, 2), 10);
        assert_eq!(rows_per_task(49152, 64, 2), 6144);
    }
}
