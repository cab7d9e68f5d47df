//! SentencePiece (BPE variant) merging by token score, as llama.cpp's SPM tokenizer does it.
//!
//! Starting from single code points, the adjacent pair whose concatenation is a token with the
//! highest score is merged first (leftmost on ties), until no adjacent pair forms a token. Any
//! symbol left that is not a token is emitted as `<0xXX>` byte tokens (or, in a vocabulary
//! without byte tokens, one unknown token per byte). The input must already have spaces escaped
//! as `▁`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::vocab::Vocab;

#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug)]
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pair {}

impl Ord for Pair {
    /// Max-heap order: higher score first, then the leftmost pair. Scores compare as plain
    /// floats (so -0.0 == 0.0), matching the reference comparator.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.partial_cmp(&other.score).unwrap_or(Ordering::Equal).then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Tokenizes `text` (spaces already escaped) and appends the ids to `out`.
pub(crate) fn encode(vocab: &Vocab, unk: Option<u32>, text: &str, out: &mut Vec<u32>) {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol { start, len: c.len_utf8(), prev: i.checked_sub(1), next: None });
        if i > 0 {
            symbols[i - 1].next = Some(i);
        }
    }
    if symbols.is_empty() {
        return;
    }
    let mut queue = BinaryHeap::new();
    let push_pair = |symbols: &[Symbol], queue: &mut BinaryHeap<Pair>, l: Option<usize>, r: Option<usize>| {
        let (Some(l), Some(r)) = (l, r) else { return };
        let (ls, rs) = (&symbols[l], &symbols[r]);
        let len = ls.len + rs.len;
        // Symbols are contiguous, so the pair's text is one slice.
        if let Some(id) = vocab.id(&text[ls.start..ls.start + len]) {
            queue.push(Pair { score: vocab.scores[id as usize], left: l, right: r, len });
        }
    };
    for i in 1..symbols.len() {
        push_pair(&symbols, &mut queue, Some(i - 1), Some(i));
    }
    while let Some(pair) = queue.pop() {
        let (l, r) = (symbols[pair.left], symbols[pair.right]);
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
    let mut i = Some(0);
    while let Some(idx) = i {
        let s = symbols[idx];
        let piece = &text[s.start..s.start + s.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => {
                for b in piece.bytes() {
                    out.extend(byte_token(vocab, b).or(unk));
                }
            }
        }
        i = s.next;
    }
}

/// The token for raw byte `b`: `<0xXX>`, else the byte itself as a token.
pub(crate) fn byte_token(vocab: &Vocab, b: u8) -> Option<u32> {
    vocab.id(&format!("<0x{b:02X}>")).or_else(|| std::str::from_utf8(&[b]).ok().and_then(|s| vocab.id(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{resolve, VocabSpec};

    fn vocab(tokens: &[(&str, f32)]) -> Vocab {
        let spec = VocabSpec {
            model: "llama".into(),
            tokens: tokens.iter().map(|(s, _)| s.to_string()).collect(),
            scores: Some(tokens.iter().map(|(_, s)| *s).collect()),
            ..Default::default()
        };
        resolve(spec).unwrap().vocab
    }

    fn run(v: &Vocab, text: &str) -> Vec<u32> {
        let mut out = vec![];
        encode(v, Some(0), text, &mut out);
        out
    }

    #[test]
    fn highest_score_merges_first() {
        let toks = [("<unk>", 0.0), ("a", -1.0), ("b", -1.0), ("c", -1.0), ("ab", -5.0), ("bc", -2.0)];
        // "bc" scores higher than "ab": a + bc.
        assert_eq!(run(&vocab(&toks), "abc"), [1, 5]);
        let toks = [("<unk>", 0.0), ("a", -1.0), ("b", -1.0), ("c", -1.0), ("ab", -2.0), ("bc", -5.0)];
        assert_eq!(run(&vocab(&toks), "abc"), [4, 3]);
    }

    #[test]
    fn ties_merge_leftmost_first() {
        let toks = [("<unk>", 0.0), ("a", -1.0), ("aa", -2.0)];
        assert_eq!(run(&vocab(&toks), "aaa"), [2, 1]);
    }

    #[test]
    fn merges_only_through_tokens() {
        // "abc" is a token but no two-symbol pair reaches it, so it is never formed.
        let toks = [("<unk>", 0.0), ("a", -1.0), ("b", -1.0), ("c", -1.0), ("abc", 0.0)];
        assert_eq!(run(&vocab(&toks), "abc"), [1, 2, 3]);
    }

    #[test]
    fn byte_fallback_for_unknown_characters() {
        let mut toks: Vec<(String, f32)> = vec![("<unk>".into(), 0.0), ("▁".into(), -1.0)];
        for b in 0..=255u8 {
            toks.push((format!("<0x{b:02X}>"), 0.0));
        }
        let refs: Vec<(&str, f32)> = toks.iter().map(|(s, f)| (s.as_str(), *f)).collect();
        let v = vocab(&refs);
        // "é" is C3 A9 in UTF-8.
        assert_eq!(run(&v, "▁é"), [1, 2 + 0xC3, 2 + 0xA9]);
    }

    #[test]
    fn missing_byte_tokens_use_unk() {
        let toks = [("<unk>", 0.0), ("a", -1.0)];
        assert_eq!(run(&vocab(&toks), "aé"), [1, 0, 0]);
    }
}
