//! The merge loop shared by byte-level BPE and SentencePiece: start from one symbol per
//! character and repeatedly merge the adjacent pair with the best priority (the leftmost one
//! among equals) until no adjacent pair has a priority. The two tokenizers differ only in how
//! a pair is ranked: BPE by merge rank, SentencePiece by the score of the joined token.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A run of the input text; merged-away symbols have `len == 0`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Symbol {
    pub(crate) start: usize,
    pub(crate) len: usize,
    next: Option<usize>,
    prev: Option<usize>,
}

#[derive(Debug)]
struct Pair<P> {
    priority: P,
    left: usize,
    right: usize,
    len: usize,
}

impl<P: PartialOrd> PartialEq for Pair<P> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<P: PartialOrd> Eq for Pair<P> {}

impl<P: PartialOrd> Ord for Pair<P> {
    /// Max-heap order: higher priority first, then the leftmost pair. Priorities compare as
    /// plain values (so f32 scores -0.0 and 0.0 are equal), matching llama.cpp's comparators.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.partial_cmp(&other.priority).unwrap_or(Ordering::Equal).then(other.left.cmp(&self.left))
    }
}

impl<P: PartialOrd> PartialOrd for Pair<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Merges the characters of `text`. `priority(pair_text, split)` ranks the pair whose joined
/// text is `pair_text` (left part `..split`), or returns `None` when it may not merge.
/// Returns the symbols in text order, merged-away ones removed.
pub(crate) fn merge<P: PartialOrd>(text: &str, mut priority: impl FnMut(&str, usize) -> Option<P>) -> Vec<Symbol> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol { start, len: c.len_utf8(), prev: i.checked_sub(1), next: None });
        if i > 0 {
            symbols[i - 1].next = Some(i);
        }
    }
    let mut queue = BinaryHeap::new();
    let mut push_pair = |symbols: &[Symbol], queue: &mut BinaryHeap<Pair<P>>, l: Option<usize>, r: Option<usize>| {
        let (Some(l), Some(r)) = (l, r) else { return };
        let (ls, rs) = (&symbols[l], &symbols[r]);
        let len = ls.len + rs.len;
        // Symbols are contiguous, so the pair's text is one slice.
        if let Some(p) = priority(&text[ls.start..ls.start + len], ls.len) {
            queue.push(Pair { priority: p, left: l, right: r, len });
        }
    };
    for i in 1..symbols.len() {
        push_pair(&symbols, &mut queue, Some(i - 1), Some(i));
    }
    while let Some(pair) = queue.pop() {
        let (l, r) = (symbols[pair.left], symbols[pair.right]);
        // Stale: one side was merged away or grew since the pair was queued.
        if l.len == 0 || r.len == 0 || l.len + r.len != pair.len {
            continue;
        }
        symbols[pair.left].len += r.len;
        symbols[pair.left].next = r.next;
        symbols[pair.right].len = 0;
        if let Some(n) = r.next {
            symbols[n].prev = Some(pair.left);
        }
        push_pair(&symbols, &mut queue, l.prev, Some(pair.left));
        push_pair(&symbols, &mut queue, Some(pair.left), r.next);
    }
    symbols.retain(|s| s.len > 0);
    symbols
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str, symbols: &[Symbol]) -> Vec<String> {
        symbols.iter().map(|s| text[s.start..s.start + s.len].to_string()).collect()
    }

    #[test]
    fn best_pair_first_then_leftmost() {
        // Priority = how much we like the pair; "bc" beats "ab".
        let prio = |p: &str, _| match p {
            "ab" => Some(1),
            "bc" => Some(2),
            "abc" => Some(3),
            _ => None,
        };
        assert_eq!(pieces("abc", &merge("abc", prio)), ["abc"]);
        let only_pairs = |p: &str, _| match p {
            "ab" => Some(1),
            "bc" => Some(2),
            _ => None,
        };
        assert_eq!(pieces("abc", &merge("abc", only_pairs)), ["a", "bc"]);
        // Equal priorities: the leftmost pair merges first.
        let equal = |p: &str, _| (p.len() == 2).then_some(0);
        assert_eq!(pieces("aaaa", &merge("aaaa", equal)), ["aa", "aa"]);
        assert!(merge("", equal).is_empty());
        assert_eq!(pieces("é😀", &merge("é😀", |_: &str, _| None::<u8>)), ["é", "😀"]);
    }
}
