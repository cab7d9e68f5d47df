//! Storage of the paged KV cache for all layers of one model.

use kiln_kernels::{KvLayer, KvLayout};

/// K and V blocks of every layer. Which sequence owns which block is decided by the engine's
/// block manager; this is only the memory, shaped for the model.
pub struct KvCache {
    pub layout: KvLayout,
    pub layers: Vec<KvLayer>,
}

impl KvCache {
    pub fn new(n_layers: usize, layout: KvLayout) -> KvCache {
        KvCache { layout, layers: (0..n_layers).map(|_| KvLayer::new(&layout)).collect() }
    }

    /// Bytes of cache per token across all layers (K and V, f16).
    pub fn bytes_per_token(&self) -> usize {
        let slot = self.layout.k_slot_len() + self.layout.v_slot_len();
        self.layers.len() * slot * std::mem::size_of::<half::f16>()
    }

    /// Total bytes reserved.
    pub fn bytes(&self) -> usize {
        self.bytes_per_token() * self.layout.n_blocks * self.layout.block_size
    }

    /// Copies block `src` into block `dst` in every layer (copy-on-write).
    pub fn copy_block(&mut self, src: usize, dst: usize) {
        let layout = self.layout;
        for layer in &mut self.layers {
            layer.copy_block(&layout, src, dst);
        }
    }
}
