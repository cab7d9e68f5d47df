//! Ownership of the paged KV cache's blocks: a free list and a reference count per block.
//!
//! Sequences hold block tables into the cache; a block shared by several sequences (a common
//! prefix) has a count above one and returns to the free list when the last holder lets go.

/// Hands out and takes back KV blocks. Knows nothing of models or requests.
#[derive(Debug)]
pub struct BlockManager {
    block_size: usize,
    /// Free blocks, taken from the end (most recently freed first: its memory is warm).
    free: Vec<u32>,
    refs: Vec<u32>,
}

/// The cache has no free block left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the KV cache is full ({total} blocks of {block_size} tokens in use)")]
pub struct OutOfBlocks {
    pub total: usize,
    pub block_size: usize,
}

impl BlockManager {
    pub fn new(n_blocks: usize, block_size: usize) -> BlockManager {
        assert!(block_size > 0, "block size must be positive");
        BlockManager { block_size, free: (0..n_blocks as u32).rev().collect(), refs: vec![0; n_blocks] }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn n_blocks(&self) -> usize {
        self.refs.len()
    }

    pub fn n_free(&self) -> usize {
        self.free.len()
    }

    /// Takes a free block with a reference count of one.
    pub fn allocate(&mut self) -> Result<u32, OutOfBlocks> {
        let b = self.free.pop().ok_or(OutOfBlocks { total: self.refs.len(), block_size: self.block_size })?;
        self.refs[b as usize] = 1;
        Ok(b)
    }

    /// Adds a holder to an allocated block (sharing a prefix).
    pub fn retain(&mut self, block: u32) {
        let r = &mut self.refs[block as usize];
        assert!(*r > 0, "retain of free block {block}");
        *r += 1;
    }

    /// Drops a holder; the block is free again when none is left.
    pub fn release(&mut self, block: u32) {
        let r = &mut self.refs[block as usize];
        assert!(*r > 0, "release of free block {block}");
        *r -= 1;
        if *r == 0 {
            self.free.push(block);
        }
    }

    pub fn ref_count(&self, block: u32) -> u32 {
        self.refs[block as usize]
    }

    /// Blocks needed to hold `n_tokens` tokens.
    pub fn blocks_for(&self, n_tokens: usize) -> usize {
        n_tokens.div_ceil(self.block_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_share_release() {
        let mut bm = BlockManager::new(3, 16);
        let a = bm.allocate().unwrap();
        let b = bm.allocate().unwrap();
        assert_ne!(a, b);
        bm.retain(a);
        assert_eq!(bm.ref_count(a), 2);
        bm.release(a);
        assert_eq!(bm.n_free(), 1);
        bm.release(a);
        assert_eq!(bm.n_free(), 2);
        let _c = bm.allocate().unwrap();
        let _d = bm.allocate().unwrap();
        assert_eq!(bm.allocate(), Err(OutOfBlocks { total: 3, block_size: 16 }));
        assert_eq!(bm.blocks_for(0), 0);
        assert_eq!(bm.blocks_for(16), 1);
        assert_eq!(bm.blocks_for(17), 2);
        let _ = b;
    }

    #[test]
    #[should_panic(expected = "release of free block")]
    fn double_release_is_a_bug() {
        let mut bm = BlockManager::new(1, 4);
        let a = bm.allocate().unwrap();
        bm.release(a);
        bm.release(a);
    }
}
