//! A sequence's tokens and its KV blocks.

use crate::block_manager::{BlockManager, OutOfBlocks};

/// Tokens of one sequence and the blocks that hold their keys and values.
/// Invariant: `block_table` holds enough blocks for the first `n_cached` tokens.
#[derive(Debug, Default, Clone)]
pub struct Sequence {
    pub tokens: Vec<u32>,
    pub block_table: Vec<u32>,
    /// Leading tokens whose K/V are in the cache.
    pub n_cached: usize,
}

impl Sequence {
    /// Grows the block table to hold `n_tokens` tokens.
    pub fn reserve(&mut self, bm: &mut BlockManager, n_tokens: usize) -> Result<(), OutOfBlocks> {
        let need = bm.blocks_for(n_tokens);
        if need > self.block_table.len() && need - self.block_table.len() > bm.n_free() {
            return Err(OutOfBlocks { total: bm.n_blocks(), block_size: bm.block_size() });
        }
        while self.block_table.len() < need {
            self.block_table.push(bm.allocate()?);
        }
        Ok(())
    }

    /// Keeps the first `n` tokens (and their cache), releasing blocks no longer needed.
    pub fn truncate(&mut self, bm: &mut BlockManager, n: usize) {
        self.tokens.truncate(n);
        self.n_cached = self.n_cached.min(n);
        let keep = bm.blocks_for(n);
        for b in self.block_table.drain(keep.min(self.block_table.len())..) {
            bm.release(b);
        }
    }

    /// Releases every block.
    pub fn clear(&mut self, bm: &mut BlockManager) {
        self.truncate(bm, 0);
    }

    /// Releases every block but keeps the tokens, to be computed again later (a preempted
    /// sequence).
    pub fn evict(&mut self, bm: &mut BlockManager) {
        for b in self.block_table.drain(..) {
            bm.release(b);
        }
        self.n_cached = 0;
    }

    /// Length of the common prefix of the cached tokens and `tokens`.
    pub fn common_prefix(&self, tokens: &[u32]) -> usize {
        self.tokens[..self.n_cached].iter().zip(tokens).take_while(|(a, b)| a == b).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_truncate_and_prefix() {
        let mut bm = BlockManager::new(4, 4);
        let mut s = Sequence::default();
        s.reserve(&mut bm, 9).unwrap();
        assert_eq!(s.block_table.len(), 3);
        assert_eq!(bm.n_free(), 1);
        // Not enough blocks: nothing is taken.
        assert!(s.reserve(&mut bm, 17).is_err());
        assert_eq!(bm.n_free(), 1);
        s.tokens = (0..9).collect();
        s.n_cached = 9;
        assert_eq!(s.common_prefix(&[0, 1, 2, 7]), 3);
        s.truncate(&mut bm, 4);
        assert_eq!(s.block_table.len(), 1);
        assert_eq!(s.n_cached, 4);
        assert_eq!(bm.n_free(), 3);
        s.evict(&mut bm);
        assert_eq!((s.tokens.len(), s.n_cached, bm.n_free()), (4, 0, 4));
        s.reserve(&mut bm, 4).unwrap();
        s.clear(&mut bm);
        assert_eq!((s.tokens.len(), bm.n_free()), (0, 4));
    }
}
