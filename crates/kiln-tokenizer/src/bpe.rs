//! Byte-level BPE: merges adjacent symbols of a pre-tokenized word by merge rank.
//!
//! The lowest-ranked adjacent pair is merged first; among equal ranks the leftmost pair wins.
//! That order (not just the set of merges) decides the output, so it is kept exactly.

use std::cmp::Reverse;
use std::collections::HashMap;

use crate::merge::merge;
use crate::vocab::Vocab;

/// Merge ranks keyed by the merge line `"left right"`.
#[derive(Debug, Default)]
pub(crate) struct Merges {
    ranks: HashMap<Box<str>, u32>,
}

impl Merges {
    /// Parses merge lines. A line splits at its first space after the first byte (so a merge of
    /// a leading space-like token stays intact); the first occurrence of a pair keeps its rank.
    pub(crate) fn new(lines: &[String]) -> Merges {
        let mut ranks = HashMap::with_capacity(lines.len());
        for (rank, line) in lines.iter().enumerate() {
            let has_separator = line.as_bytes().iter().skip(1).any(|&b| b == b' ');
            // Without a separator llama.cpp records an empty pair, which can never match.
            let key: Box<str> = if has_separator { line.as_str().into() } else { " ".into() };
            ranks.entry(key).or_insert(rank as u32);
        }
        Merges { ranks }
    }

    fn rank(&self, key: &mut String, left: &str, right: &str) -> Option<u32> {
        key.clear();
        key.push_str(left);
        key.push(' ');
        key.push_str(right);
        self.ranks.get(key.as_str()).copied()
    }
}

/// How symbols that are not tokens after merging are spelled as byte tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteTokens {
    /// Byte-level alphabet: each (ASCII) byte of the symbol looked up as a one-byte token.
    Alphabet,
    /// SentencePiece-style `<0xXX>` tokens.
    Hex,
}

/// Splits one word into symbols (one per code point), merges them, and appends the token ids.
pub(crate) fn encode_word(
    vocab: &Vocab,
    merges: &Merges,
    word: &str,
    whole_word_first: bool,
    bytes: ByteTokens,
    out: &mut Vec<u32>,
) {
    if whole_word_first {
        if let Some(id) = vocab.id(word) {
            out.push(id);
            return;
        }
    }
    let mut key = String::new();
    // Lower merge rank merges first: the priority is the rank reversed.
    let symbols = merge(word, |pair, split| merges.rank(&mut key, &pair[..split], &pair[split..]).map(Reverse));
    for s in &symbols {
        let piece = &word[s.start..s.start + s.len];
        if let Some(id) = vocab.id(piece) {
            out.push(id);
            continue;
        }
        for b in piece.bytes() {
            let id = match bytes {
                // Only ASCII bytes can be whole one-byte tokens; others are silently dropped,
                // as llama.cpp does.
                ByteTokens::Alphabet if b.is_ascii() => vocab.id(std::str::from_utf8(&[b]).unwrap_or("")),
                ByteTokens::Alphabet => None,
                ByteTokens::Hex => vocab.id(&format!("<0x{b:02X}>")),
            };
            out.extend(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{resolve, VocabSpec};

    fn vocab(tokens: &[&str]) -> Vocab {
        let spec = VocabSpec {
            model: "gpt2".into(),
            pre: Some("gpt-2".into()),
            tokens: tokens.iter().map(|s| s.to_string()).collect(),
            merges: Some(vec![]),
            ..Default::default()
        };
        resolve(spec).unwrap().vocab
    }

    fn run(tokens: &[&str], merges: &[&str], word: &str) -> Vec<u32> {
        let v = vocab(tokens);
        let m = Merges::new(&merges.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut out = vec![];
        encode_word(&v, &m, word, false, ByteTokens::Alphabet, &mut out);
        out
    }

    #[test]
    fn merges_by_rank_not_position() {
        // "b c" outranks "a b": abc -> a + bc, not ab + c.
        let toks = ["a", "b", "c", "ab", "bc", "abc"];
        assert_eq!(run(&toks, &["b c", "a b"], "abc"), [0, 4]);
        assert_eq!(run(&toks, &["a b", "b c"], "abc"), [3, 2]);
        assert_eq!(run(&toks, &["a b", "ab c"], "abc"), [5]);
    }

    #[test]
    fn equal_pairs_merge_leftmost_first() {
        // "aaa" with only "a a": the left pair merges, leaving "aa" + "a".
        let toks = ["a", "aa"];
        assert_eq!(run(&toks, &["a a"], "aaa"), [1, 0]);
        assert_eq!(run(&toks, &["a a"], "aaaa"), [1, 1]);
        // Merging into a non-token symbol spells it out byte by byte.
        assert_eq!(run(&toks, &["a a", "aa aa"], "aaaa"), [0, 0, 0, 0]);
    }

    #[test]
    fn unknown_symbols_fall_back_to_ascii_bytes() {
        // "xy" is a merged symbol without a token: it is spelled byte by byte.
        let toks = ["x", "y"];
        assert_eq!(run(&toks, &["x y"], "xy"), [0, 1]);
        // A non-ASCII symbol with no token is dropped.
        assert_eq!(run(&toks, &[], "xé"), [0]);
    }

    #[test]
    fn first_duplicate_merge_keeps_its_rank() {
        let m = Merges::new(&["a b".into(), "c d".into(), "a b".into()]);
        assert_eq!(m.rank(&mut String::new(), "a", "b"), Some(0));
        assert_eq!(m.rank(&mut String::new(), "c", "d"), Some(1));
    }
}
