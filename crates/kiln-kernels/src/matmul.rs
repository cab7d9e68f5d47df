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
    matmul_group(pool, &[*w], x, m, &mut [y], scratch);
}

/// `ys[i] = x · ws[i]ᵀ` for several matrices over the same input (a layer's Q, K and V, or
/// its gate and up projections) as one parallel job: the input is quantized once per
/// activation type and the threads synchronise once instead of once per matrix, which is
/// most of the cost of a generation step's small products.
pub fn matmul_group(
    pool: &ThreadPool,
    ws: &[QMatrix],
    x: &[f32],
    m: usize,
    ys: &mut [&mut [f32]],
    scratch: &mut MatmulScratch,
) {
    assert_eq!(ws.len(), ys.len(), "one output per matrix");
    let Some(first) = ws.first() else { return };
    let cols = first.cols;
    assert_eq!(x.len(), m * cols, "activation shape");
    for (w, y) in ws.iter().zip(ys.iter()) {
        assert_eq!(w.cols, cols, "matrices of a group share the input width");
        assert_eq!(y.len(), m * w.rows, "output shape");
    }
    // Quantize the input once for each activation type the group needs.
    let mut act_types: Vec<GgmlType> = Vec::new();
    for w in ws {
        let t = kiln_quant::vec_dot_type(w.ty);
        if !act_types.contains(&t) {
            act_types.push(t);
        }
    }
    let act_offsets: Vec<usize> = act_types
        .iter()
        .scan(0, |off, &t| {
            let here = *off;
            *off += m * kiln_quant::row_bytes(t, cols);
            Some(here)
        })
        .collect();
    let total: usize = act_types.iter().map(|&t| m * kiln_quant::row_bytes(t, cols)).sum();
    scratch.quantized.resize(total, 0);
    for (&t, &off) in act_types.iter().zip(&act_offsets) {
        let act_row = kiln_quant::row_bytes(t, cols);
        let q_ptr = SyncPtr(scratch.quantized[off..].as_mut_ptr());
        pool.for_chunks(m, 8, |rows| {
            for r in rows {
                // SAFETY: each activation row is quantized into its own disjoint byte range.
                let dst = unsafe { std::slice::from_raw_parts_mut(q_ptr.get().add(r * act_row), act_row) };
                kiln_quant::quantize_row(t, &x[r * cols..(r + 1) * cols], dst);
            }
        });
    }
    // Tasks across all matrices: (matrix, first row, end row).
    let mut tasks = Vec::new();
    let mut staging_at = Vec::with_capacity(ws.len());
    let mut staging_len = 0;
    for (i, w) in ws.iter().enumerate() {
        let chunk = rows_per_task(w.rows, m, pool.n_threads());
        tasks.extend((0..w.rows).step_by(chunk.max(1)).map(|r0| (i, r0, (r0 + chunk).min(w.rows))));
        staging_at.push(staging_len);
        staging_len += if m == 1 { 0 } else { w.rows * m };
    }
    // The kernel writes weight-row-major `[rows][m]`. For m = 1 that is already `y`; else
    // each task writes its rows into its own part of `transposed` and then moves them into
    // its columns of `y` (the task's part is still in cache).
    scratch.transposed.resize(staging_len, 0.0);
    let staging = SyncPtr(scratch.transposed.as_mut_ptr());
    let y_ptrs: Vec<SyncPtr<f32>> = ys.iter_mut().map(|y| SyncPtr(y.as_mut_ptr())).collect();
    let quantized = &scratch.quantized[..];
    pool.run(tasks.len(), |task| {
        let (i, r0, r1) = tasks[task];
        let w = &ws[i];
        let act_ty = kiln_quant::vec_dot_type(w.ty);
        let a = act_types.iter().position(|&t| t == act_ty).unwrap_or(0);
        let xq = &quantized[act_offsets[a]..act_offsets[a] + m * kiln_quant::row_bytes(act_ty, cols)];
        let w_row = w.row_bytes();
        let w_chunk = &w.data[r0 * w_row..r1 * w_row];
        let y_base = y_ptrs[i].get();
        if m == 1 {
            // SAFETY: tasks own disjoint row ranges of their matrix, i.e. disjoint outputs.
            let dst = unsafe { std::slice::from_raw_parts_mut(y_base.add(r0), r1 - r0) };
            kiln_quant::gemm(w.ty, cols, r1 - r0, w_chunk, 1, xq, dst);
            return;
        }
        // SAFETY: as above, this staging range belongs to this task alone.
        let part = unsafe { std::slice::from_raw_parts_mut(staging.get().add(staging_at[i] + r0 * m), (r1 - r0) * m) };
        kiln_quant::gemm(w.ty, cols, r1 - r0, w_chunk, m, xq, part);
        // Eight tokens at a time: contiguous reads, eight sequential write streams.
        for c0 in (0..m).step_by(8) {
            let cn = (m - c0).min(8);
            for r in r0..r1 {
                for (j, &v) in part[(r - r0) * m + c0..][..cn].iter().enumerate() {
                    // SAFETY: element (token c0 + j, row r) of this matrix's output lies in
                    // this task's rows r0..r1.
                    unsafe { *y_base.add((c0 + j) * w.rows + r) = v };
                }
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
    fn group_equals_separate_products() {
        let pool = ThreadPool::new(2);
        let cols = 64;
        let make = |rows: usize, ty: GgmlType, seed: usize| {
            let rb = kiln_quant::row_bytes(ty, cols);
            let mut data = vec![0u8; rb * rows];
            for r in 0..rows {
                let row: Vec<f32> = (0..cols).map(|c| (((r * 31 + c * 17 + seed) % 23) as f32 - 11.0) / 9.0).collect();
                kiln_quant::quantize_row(ty, &row, &mut data[r * rb..(r + 1) * rb]);
            }
            data
        };
        let (d0, d1, d2) = (make(40, GgmlType::Q8_0, 1), make(24, GgmlType::Q4_1, 2), make(8, GgmlType::Q8_0, 3));
        let ws = [
            QMatrix { ty: GgmlType::Q8_0, rows: 40, cols, data: &d0 },
            QMatrix { ty: GgmlType::Q4_1, rows: 24, cols, data: &d1 },
            QMatrix { ty: GgmlType::Q8_0, rows: 8, cols, data: &d2 },
        ];
        for m in [1, 5] {
            let x: Vec<f32> = (0..m * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 10.0).collect();
            let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; m * w.rows]).collect();
            let mut refs: Vec<&mut [f32]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
            matmul_group(&pool, &ws, &x, m, &mut refs, &mut MatmulScratch::default());
            for (w, got) in ws.iter().zip(&outs) {
                let mut want = vec![0f32; m * w.rows];
                matmul(&pool, w, &x, m, &mut want, &mut MatmulScratch::default());
                assert_eq!(got, &want);
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
