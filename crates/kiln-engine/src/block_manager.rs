//! Ownership of the paged KV cache's blocks: a free list, a reference count per block, and
//! the prefix cache.
//!
//! Sequences hold block tables into the cache; a block shared by several sequences (a common
//! prefix) has a count above one. A full block can be published under the hash of its tokens
//! and everything before them; when its last holder lets go it is not freed but kept,
//! evictable, so a later request starting with the same tokens picks it up instead of
//! computing it again. Evictable blocks are reused least recently released first, only when
//! no free block is left.

use std::collections::{BTreeMap, HashMap};

/// Hands out and takes back KV blocks. Knows nothing of models or requests.
#[derive(Debug)]
pub struct BlockManager {
    block_size: usize,
    /// Free blocks, taken from the end (most recently freed first: its memory is warm).
    free: Vec<u32>,
    refs: Vec<u32>,
    /// Published blocks by the hash of their contents and prefix.
    cached: HashMap<u64, u32>,
    /// The hash each published block is known by.
    hash_of: Vec<Option<u64>>,
    /// Published blocks nobody holds, by when they were released (oldest first).
    evictable: BTreeMap<u64, u32>,
    /// When each evictable block was released (its key in `evictable`).
    released_at: Vec<u64>,
    clock: u64,
    hits: u64,
    lookups: u64,
}

/// The cache has no free block left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the KV cache is full ({total} blocks of {block_size} tokens in use)")]
pub struct OutOfBlocks {
    pub total: usize,
    pub block_size: usize,
}

/// The hash a full block is published under: its tokens and the hash of the blocks before
/// it, so equal hashes mean equal prefixes (up to hash collisions of 64-bit SipHash).
pub fn chain_hash(prev: Option<u64>, tokens: &[u32]) -> u64 {
    use std::hash::{Hash, Hasher};
    // Fixed keys: the same tokens hash the same in every run and on every thread.
    let mut h = std::hash::DefaultHasher::new();
    prev.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

impl BlockManager {
    pub fn new(n_blocks: usize, block_size: usize) -> BlockManager {
        assert!(block_size > 0, "block size must be positive");
        BlockManager {
            block_size,
            free: (0..n_blocks as u32).rev().collect(),
            refs: vec![0; n_blocks],
            cached: HashMap::new(),
            hash_of: vec![None; n_blocks],
            evictable: BTreeMap::new(),
            released_at: vec![0; n_blocks],
            clock: 0,
            hits: 0,
            lookups: 0,
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn n_blocks(&self) -> usize {
        self.refs.len()
    }

    /// Blocks that can be handed out: free ones and cached ones nobody holds.
    pub fn n_free(&self) -> usize {
        self.free.len() + self.evictable.len()
    }

    /// Blocks held by at least one sequence.
    pub fn n_used(&self) -> usize {
        self.n_blocks() - self.n_free()
    }

    /// (blocks found, blocks looked up) by `lookup` so far.
    pub fn cache_hits(&self) -> (u64, u64) {
        (self.hits, self.lookups)
    }

    /// Takes a free block with a reference count of one, evicting the least recently
    /// released cached block when none is free.
    pub fn allocate(&mut self) -> Result<u32, OutOfBlocks> {
        let b = match self.free.pop() {
            Some(b) => b,
            None => {
                let (_, b) = self
                    .evictable
                    .pop_first()
                    .ok_or(OutOfBlocks { total: self.refs.len(), block_size: self.block_size })?;
                if let Some(h) = self.hash_of[b as usize].take() {
                    self.cached.remove(&h);
                }
                b
            }
        };
        self.refs[b as usize] = 1;
        Ok(b)
    }

    /// Adds a holder to an allocated block (sharing a prefix).
    pub fn retain(&mut self, block: u32) {
        let r = &mut self.refs[block as usize];
        assert!(*r > 0, "retain of free block {block}");
        *r += 1;
    }

    /// Drops a holder; the block is free again when none is left, or evictable if it is
    /// published in the prefix cache.
    pub fn release(&mut self, block: u32) {
        let r = &mut self.refs[block as usize];
        assert!(*r > 0, "release of free block {block}");
        *r -= 1;
        if *r == 0 {
            if self.hash_of[block as usize].is_some() {
                self.clock += 1;
                self.released_at[block as usize] = self.clock;
                self.evictable.insert(self.clock, block);
            } else {
                self.free.push(block);
            }
        }
    }

    /// Publishes a full, computed block under `hash`. A block already published under the
    /// same hash (another sequence computed the same prefix) stays the one found.
    pub fn publish(&mut self, block: u32, hash: u64) {
        if self.hash_of[block as usize].is_some() || self.cached.contains_key(&hash) {
            return;
        }
        self.cached.insert(hash, block);
        self.hash_of[block as usize] = Some(hash);
    }

    /// The cached block published under `hash`, now held once more by the caller.
    pub fn lookup(&mut self, hash: u64) -> Option<u32> {
        self.lookups += 1;
        let block = *self.cached.get(&hash)?;
        self.hits += 1;
        if self.refs[block as usize] == 0 {
            self.evictable.remove(&self.released_at[block as usize]);
        }
        self.refs[block as usize] += 1;
        Some(block)
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

    #[test]
    fn published_blocks_outlive_their_holders_until_space_is_needed() {
        let mut bm = BlockManager::new(3, 4);
        let h1 = chain_hash(None, &[1, 2, 3, 4]);
        let h2 = chain_hash(Some(h1), &[5, 6, 7, 8]);
        let (a, b) = (bm.allocate().unwrap(), bm.allocate().unwrap());
        bm.publish(a, h1);
        bm.publish(b, h2);
        bm.release(a);
        bm.release(b);
        // Nobody holds them, yet they can be found again; they still count as available.
        assert_eq!((bm.n_free(), bm.n_used()), (3, 0));
        assert_eq!(bm.lookup(h1), Some(a));
        assert_eq!(bm.ref_count(a), 1);
        assert_eq!(bm.n_free(), 2);
        assert_eq!(bm.lookup(chain_hash(None, &[9, 9, 9, 9])), None);
        assert_eq!(bm.cache_hits(), (1, 2));
        // Free blocks go first; then the least recently released cached block is evicted.
        let c = bm.allocate().unwrap();
        assert!(c != a && c != b);
        let d = bm.allocate().unwrap();
        assert_eq!(d, b, "the evictable block is reused");
        assert_eq!(bm.lookup(h2), None, "an evicted block is no longer found");
        assert_eq!(bm.allocate(), Err(OutOfBlocks { total: 3, block_size: 4 }));
    }

    #[test]
    fn the_same_prefix_published_twice_keeps_the_first_block() {
        let mut bm = BlockManager::new(2, 4);
        let h = chain_hash(None, &[1, 2, 3, 4]);
        let (a, b) = (bm.allocate().unwrap(), bm.allocate().unwrap());
        bm.publish(a, h);
        bm.publish(b, h);
        bm.release(b);
        assert_eq!(bm.n_free(), 1);
        assert_eq!(bm.lookup(h), Some(a));
        assert_eq!(bm.ref_count(a), 2);
    }

    #[test]
    fn chain_hashes_depend_on_the_prefix() {
        let x = chain_hash(None, &[1, 2]);
        assert_eq!(x, chain_hash(None, &[1, 2]));
        assert_ne!(chain_hash(Some(x), &[3, 4]), chain_hash(None, &[3, 4]));
        assert_ne!(chain_hash(None, &[1, 2]), chain_hash(None, &[2, 1]));
    }
}
