//! Attention over a paged KV cache.
//!
//! Keys and values of every layer live in fixed-size blocks of `block_size` token slots; a
//! sequence owns a block table mapping its logical block `p / block_size` to a physical block.
//! Storage is f16, as in llama.cpp's default cache: half the memory traffic of f32 and the
//! same rounding as the reference implementation.

use crate::pool::ThreadPool;
use crate::vec;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// Shape of one layer's cache: `[n_blocks][block_size][n_kv_heads][head_dim]` for K and
/// `[n_blocks][block_size][n_kv_heads][v_head_dim]` for V.
///
/// Multi-head latent attention (DeepSeek V2/V3) caches one compressed latent per token instead
/// of per-head keys and values: its "key" is the latent followed by a shared rotary key, and its
/// values are the latent itself, so it stores no V (`v_head_dim` 0) and reads the values from
/// the first `AttnParams::v_dim` elements of each key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLayout {
    pub n_blocks: usize,
    pub block_size: usize,
    pub n_kv_heads: usize,
    /// Width of one head's key.
    pub head_dim: usize,
    /// Width of one head's stored value; 0 when the values are a prefix of the keys.
    pub v_head_dim: usize,
}

impl KvLayout {
    /// Keys and values of the usual shape: one value as wide as each key.
    pub fn keys_and_values(n_blocks: usize, block_size: usize, n_kv_heads: usize, head_dim: usize) -> KvLayout {
        KvLayout { n_blocks, block_size, n_kv_heads, head_dim, v_head_dim: head_dim }
    }

    /// Elements of one token's keys (all KV heads).
    pub fn k_slot_len(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Elements of one token's stored values (all KV heads; 0 when values live in the keys).
    pub fn v_slot_len(&self) -> usize {
        self.n_kv_heads * self.v_head_dim
    }

    /// Token slots of one layer.
    fn n_slots(&self) -> usize {
        self.n_blocks * self.block_size
    }

    /// Index of the slot holding position `pos` of a sequence with `block_table`.
    #[inline]
    fn slot(&self, block_table: &[u32], pos: usize) -> usize {
        block_table[pos / self.block_size] as usize * self.block_size + pos % self.block_size
    }
}

/// K and V storage of one layer.
pub struct KvLayer {
    pub k: Vec<f16>,
    /// Empty when the layout stores no values.
    pub v: Vec<f16>,
}

impl KvLayer {
    /// Zeroed storage; the pages are only touched (made resident) when written, so a large
    /// context costs memory only as it fills.
    pub fn new(layout: &KvLayout) -> KvLayer {
        KvLayer {
            k: zeroed_f16(layout.n_slots() * layout.k_slot_len()),
            v: zeroed_f16(layout.n_slots() * layout.v_slot_len()),
        }
    }

    /// Stores the keys (`k_slot_len`) and values (`v_slot_len`, possibly none) of position `pos`.
    pub fn write(&mut self, layout: &KvLayout, block_table: &[u32], pos: usize, k: &[f32], v: &[f32]) {
        let slot = layout.slot(block_table, pos);
        let (nk, nv) = (layout.k_slot_len(), layout.v_slot_len());
        self.k[slot * nk..(slot + 1) * nk].convert_from_f32_slice(&k[..nk]);
        self.v[slot * nv..(slot + 1) * nv].convert_from_f32_slice(&v[..nv]);
    }

    /// Copies the slots of block `src` into block `dst` (copy-on-write of a shared block).
    pub fn copy_block(&mut self, layout: &KvLayout, src: usize, dst: usize) {
        for (store, width) in [(&mut self.k, layout.k_slot_len()), (&mut self.v, layout.v_slot_len())] {
            let n = layout.block_size * width;
            store.copy_within(src * n..(src + 1) * n, dst * n);
        }
    }
}

/// `n` zeros, allocated through the zeroing allocator (`vec![0u16; n]` becomes `calloc`,
/// whose fresh pages are not resident), where `vec![f16::ZERO; n]` would write every element.
fn zeroed_f16(n: usize) -> Vec<f16> {
    let mut bits = std::mem::ManuallyDrop::new(vec![0u16; n]);
    let (ptr, len, cap) = (bits.as_mut_ptr(), bits.len(), bits.capacity());
    // SAFETY: f16 is a transparent wrapper of u16 (same size and alignment) and the all-zero
    // bit pattern is +0.0; the allocation is handed over whole, with its length and capacity.
    unsafe { Vec::from_raw_parts(ptr.cast::<f16>(), len, cap) }
}

/// One query token: where it sits in its sequence and where that sequence's cache is.
#[derive(Clone, Copy, Debug)]
pub struct AttnQuery<'a> {
    /// Position of the token; it attends to positions `..=pos` (within the window).
    pub pos: u32,
    pub block_table: &'a [u32],
}

/// Attention parameters shared by all query tokens of one layer.
#[derive(Clone, Copy, Debug)]
pub struct AttnParams {
    pub n_heads: usize,
    /// Multiplies q·k before the softmax.
    pub scale: f32,
    /// Sliding window: a token sees the last `window` positions, itself included.
    pub window: Option<u32>,
    /// Width of one head's value and output: the layout's `v_head_dim`, or, when the layout
    /// stores no values, how many leading elements of each key are its value.
    pub v_dim: usize,
}

/// Most query tokens of one sequence handled by one task: each key and value is converted
/// from f16 once per tile instead of once per token, which is what makes a long prompt fast.
const QUERY_TILE: usize = 32;

/// Splits the batch's tokens into runs of at most `QUERY_TILE` consecutive tokens that share
/// a block table (a sequence).
fn query_tiles(queries: &[AttnQuery]) -> Vec<std::ops::Range<usize>> {
    let mut tiles = Vec::new();
    let mut start = 0;
    for t in 1..=queries.len() {
        let split = t == queries.len()
            || t - start == QUERY_TILE
            || !std::ptr::eq(queries[t].block_table, queries[start].block_table);
        if split {
            tiles.push(start..t);
            start = t;
        }
    }
    tiles
}

/// Causal attention of `queries.len()` tokens over the cache of `layer`.
///
/// `q`: `[n_tokens][n_heads][head_dim]`; `out`: `[n_tokens][n_heads][v_dim]`. Query heads are
/// grouped over the KV heads (GQA; MLA is the case of one KV head): head `h` reads KV head
/// `h / (n_heads / n_kv_heads)`. The K/V of every query token must already be written.
pub fn paged_attention(
    pool: &ThreadPool,
    layout: &KvLayout,
    layer: &KvLayer,
    params: &AttnParams,
    queries: &[AttnQuery],
    q: &[f32],
    out: &mut [f32],
) {
    let hd = layout.head_dim;
    let vd = params.v_dim;
    let n_kv = layout.n_kv_heads;
    let group = params.n_heads / n_kv;
    assert_eq!(params.n_heads % n_kv, 0, "query heads must be a multiple of KV heads");
    // Values: their own store, or the first `vd` elements of each key.
    let (v_store, v_stride) = match layout.v_head_dim {
        0 => {
            assert!(vd <= hd, "values of {vd} cannot be read from keys of {hd}");
            (&layer.k, layout.k_slot_len())
        }
        w => {
            assert_eq!(w, vd, "value width differs from the cache's");
            (&layer.v, layout.v_slot_len())
        }
    };
    assert_eq!(q.len(), queries.len() * params.n_heads * hd);
    assert_eq!(out.len(), queries.len() * params.n_heads * vd);
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let tiles = query_tiles(queries);
    let first_key = |pos: usize| match params.window {
        Some(w) => (pos + 1).saturating_sub(w as usize),
        None => 0,
    };
    // One task per (tile of a sequence's tokens, KV head): the query heads sharing that KV
    // head and the tile's tokens read each key and value once.
    pool.run(tiles.len() * n_kv, |task| {
        let (tile, kvh) = (&tiles[task / n_kv], task % n_kv);
        let table = queries[tile.start].block_table;
        // Rows are (token, head-in-group) pairs; each sees keys `lo[r]..=hi[r]`.
        let rows = tile.len() * group;
        let row_range = |r: usize| {
            let pos = queries[tile.start + r / group].pos as usize;
            (first_key(pos), pos)
        };
        let lo = (0..rows).map(|r| row_range(r).0).min().unwrap_or(0);
        let hi = (0..rows).map(|r| row_range(r).1).max().unwrap_or(0);
        let n_keys = hi + 1 - lo;
        // llama.cpp (without flash attention) multiplies the f16 cache by operands converted
        // to f16: the queries before q·k, the softmax probabilities before p·V. Rounding them
        // the same way here removes a systematic difference (several hundredths of a logit
        // from one layer's attention alone).
        let mut qs = vec![0f32; rows * hd];
        for (i, t) in tile.clone().enumerate() {
            let src = &q[(t * params.n_heads + kvh * group) * hd..][..group * hd];
            round_f16_into(src, &mut qs[i * group * hd..(i + 1) * group * hd]);
        }
        let mut acc = vec![0f32; rows * vd];
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let (kv_f32, scores) = scratch.buffers(n_keys * hd.max(vd), rows * n_keys);
            // Scores: the tile's queries against its keys, as one small matrix product.
            for p in lo..=hi {
                let off = layout.slot(table, p) * layout.k_slot_len() + kvh * hd;
                layer.k[off..off + hd].convert_to_f32_slice(&mut kv_f32[(p - lo) * hd..(p - lo + 1) * hd]);
            }
            vec::gemm_nt(&vec::MatShape { rows, inner: hd, cols: n_keys }, &qs, kv_f32, scores);
            for r in 0..rows {
                let (a, b) = row_range(r);
                let row = &mut scores[r * n_keys..(r + 1) * n_keys];
                // Keys outside this row's causal window get no weight.
                row[..a - lo].fill(0.0);
                row[b + 1 - lo..].fill(0.0);
                let seen = &mut row[a - lo..b + 1 - lo];
                vec::scale(seen, params.scale);
                softmax_inplace(seen);
                round_f16_inplace(seen);
            }
            let v_head = if layout.v_head_dim == 0 { hd } else { vd };
            for p in lo..=hi {
                let off = layout.slot(table, p) * v_stride + kvh * v_head;
                v_store[off..off + vd].convert_to_f32_slice(&mut kv_f32[(p - lo) * vd..(p - lo + 1) * vd]);
            }
            vec::gemm_nn_acc(&vec::MatShape { rows, inner: n_keys, cols: vd }, scores, kv_f32, &mut acc);
        });
        for (i, t) in tile.clone().enumerate() {
            for g in 0..group {
                let h = kvh * group + g;
                let r = i * group + g;
                // SAFETY: each (token, head) output row is written by exactly one task.
                let dst =
                    unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add((t * params.n_heads + h) * vd), vd) };
                dst.copy_from_slice(&acc[r * vd..(r + 1) * vd]);
            }
        }
    });
}

/// Per-thread buffers of attention tasks, kept between calls: a long context needs megabytes
/// of converted keys, too much to allocate for every task of every layer.
#[derive(Default)]
struct AttnScratch {
    kv: Vec<f32>,
    scores: Vec<f32>,
}

impl AttnScratch {
    fn buffers(&mut self, kv: usize, scores: usize) -> (&mut [f32], &mut [f32]) {
        if self.kv.len() < kv {
            self.kv.resize(kv, 0.0);
        }
        if self.scores.len() < scores {
            self.scores.resize(scores, 0.0);
        }
        (&mut self.kv[..kv], &mut self.scores[..scores])
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<AttnScratch> = std::cell::RefCell::new(AttnScratch::default());
}

/// `dst[i]` = `src[i]` rounded to the nearest f16 value, a chunk at a time (SIMD conversions).
fn round_f16_into(src: &[f32], dst: &mut [f32]) {
    let mut halves = [f16::ZERO; 256];
    for (s, d) in src.chunks(256).zip(dst.chunks_mut(256)) {
        let h = &mut halves[..s.len()];
        h.convert_from_f32_slice(s);
        h.convert_to_f32_slice(d);
    }
}

/// Rounds every value of `x` to the nearest f16 value.
fn round_f16_inplace(x: &mut [f32]) {
    let mut halves = [f16::ZERO; 256];
    for c in x.chunks_mut(256) {
        let h = &mut halves[..c.len()];
        h.convert_from_f32_slice(c);
        h.convert_to_f32_slice(c);
    }
}

/// Numerically stable softmax; the normaliser is summed in f64 as ggml does.
pub fn softmax_inplace(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// A raw pointer that tasks writing disjoint parts of one buffer may share.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub(crate) *mut T);
// SAFETY: users guarantee that concurrent tasks write disjoint elements.
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    /// Going through a method makes closures capture the whole (Sync) wrapper, not the raw field.
    #[inline]
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar form of the rounding the kernel does in chunks.
    fn round_f16(v: f32) -> f32 {
        f16::from_f32(v).to_f32()
    }

    /// Straightforward attention over contiguous f32 K/V of one sequence.
    #[allow(clippy::too_many_arguments)] // a test reference: plain arguments read best
    fn naive(
        q: &[f32],
        k: &[Vec<f32>],
        v: &[Vec<f32>],
        n_heads: usize,
        (n_kv, hd, vd): (usize, usize, usize),
        pos: usize,
        scale: f32,
        window: Option<usize>,
    ) -> Vec<f32> {
        let mut out = vec![0f32; n_heads * vd];
        let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
        for h in 0..n_heads {
            let kvh = h / (n_heads / n_kv);
            let qh: Vec<f32> = q[h * hd..(h + 1) * hd].iter().map(|&v| round_f16(v)).collect();
            let mut s: Vec<f32> =
                (first..=pos).map(|p| vec::dot(&qh, &k[p][kvh * hd..(kvh + 1) * hd]) * scale).collect();
            softmax_inplace(&mut s);
            s.iter_mut().for_each(|p| *p = round_f16(*p));
            for (j, p) in (first..=pos).enumerate() {
                for d in 0..vd {
                    out[h * vd + d] += s[j] * v[p][kvh * vd + d];
                }
            }
        }
        out
    }

    fn rnd(seed: &mut u64) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn paged_matches_contiguous_with_gqa_and_window() {
        let pool = ThreadPool::new(2);
        let layout = KvLayout::keys_and_values(8, 4, 2, 8);
        let (n_heads, hd, n_pos) = (6, 8, 11);
        let mut seed = 0x1234_5678_9abc_def1u64;
        // Quantise through f16 so the reference sees the same K/V as the cache holds.
        let mut gen = |n: usize| -> Vec<f32> { (0..n).map(|_| f16::from_f32(rnd(&mut seed)).to_f32()).collect() };
        let ks: Vec<Vec<f32>> = (0..n_pos).map(|_| gen(layout.k_slot_len())).collect();
        let vs: Vec<Vec<f32>> = (0..n_pos).map(|_| gen(layout.v_slot_len())).collect();
        let qs: Vec<Vec<f32>> = (0..n_pos).map(|_| gen(n_heads * hd)).collect();
        // A scattered block table: logical blocks 0,1,2 live in physical 5,1,6.
        let table = [5u32, 1, 6];
        let mut layer = KvLayer::new(&layout);
        for p in 0..n_pos {
            layer.write(&layout, &table, p, &ks[p], &vs[p]);
        }
        for window in [None, Some(3u32)] {
            let params = AttnParams { n_heads, scale: 0.35, window, v_dim: hd };
            let queries: Vec<AttnQuery> =
                (0..n_pos).map(|p| AttnQuery { pos: p as u32, block_table: &table }).collect();
            let q: Vec<f32> = qs.concat();
            let mut out = vec![0f32; q.len()];
            paged_attention(&pool, &layout, &layer, &params, &queries, &q, &mut out);
            for p in 0..n_pos {
                let want = naive(&qs[p], &ks, &vs, n_heads, (2, hd, hd), p, 0.35, window.map(|w| w as usize));
                for (a, b) in out[p * n_heads * hd..(p + 1) * n_heads * hd].iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "pos {p}: {a} vs {b}");
                }
            }
        }
    }

    /// Latent attention's cache: one KV head of 12 (a latent of 8, then 4 rotary dims) and no
    /// stored values; each head's value is the latent, the key's first 8 elements.
    #[test]
    fn values_read_from_the_key_prefix() {
        let pool = ThreadPool::new(2);
        let layout = KvLayout { n_blocks: 4, block_size: 4, n_kv_heads: 1, head_dim: 12, v_head_dim: 0 };
        let (n_heads, latent, n_pos) = (4, 8, 9);
        let mut layer = KvLayer::new(&layout);
        assert!(layer.v.is_empty());
        let mut seed = 0x0bad_cafe_1234_5678u64;
        let mut gen = |n: usize| -> Vec<f32> { (0..n).map(|_| f16::from_f32(rnd(&mut seed)).to_f32()).collect() };
        let ks: Vec<Vec<f32>> = (0..n_pos).map(|_| gen(12)).collect();
        let qs: Vec<Vec<f32>> = (0..n_pos).map(|_| gen(n_heads * 12)).collect();
        let vs: Vec<Vec<f32>> = ks.iter().map(|k| k[..latent].to_vec()).collect();
        let table = [2u32, 0, 3];
        for (p, k) in ks.iter().enumerate() {
            layer.write(&layout, &table, p, k, &[]);
        }
        let params = AttnParams { n_heads, scale: 0.3, window: None, v_dim: latent };
        let queries: Vec<AttnQuery> = (0..n_pos).map(|p| AttnQuery { pos: p as u32, block_table: &table }).collect();
        let mut out = vec![0f32; n_pos * n_heads * latent];
        paged_attention(&pool, &layout, &layer, &params, &queries, &qs.concat(), &mut out);
        for p in 0..n_pos {
            let want = naive(&qs[p], &ks, &vs, n_heads, (1, 12, latent), p, 0.3, None);
            for (a, b) in out[p * n_heads * latent..(p + 1) * n_heads * latent].iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "pos {p}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn tiles_split_by_sequence_and_size() {
        let (a, b) = (vec![0u32, 1, 2], vec![3u32]);
        let mut qs: Vec<AttnQuery> = (0..40).map(|p| AttnQuery { pos: p, block_table: &a }).collect();
        qs.extend((0..3).map(|p| AttnQuery { pos: p, block_table: &b }));
        assert_eq!(query_tiles(&qs), vec![0..32, 32..40, 40..43]);
        assert!(query_tiles(&[]).is_empty());
    }

    #[test]
    fn copy_block_duplicates_slots() {
        let layout = KvLayout::keys_and_values(3, 2, 1, 2);
        let mut layer = KvLayer::new(&layout);
        layer.write(&layout, &[0], 1, &[1.0, 2.0], &[3.0, 4.0]);
        layer.copy_block(&layout, 0, 2);
        assert_eq!(layer.k[10].to_f32(), 1.0);
        assert_eq!(layer.v[11].to_f32(), 4.0);
    }

    #[test]
    fn softmax_sums_to_one_and_is_shift_invariant() {
        let mut a = [1.0f32, 2.0, 3.0];
        let mut b = [101.0f32, 102.0, 103.0];
        softmax_inplace(&mut a);
        softmax_inplace(&mut b);
        assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6);
        }
    }
}
