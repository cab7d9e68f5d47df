//! Splitting text at special tokens before the merge algorithm sees it.
//!
//! Control, unknown and user-defined tokens are matched in the raw text first: longest token
//! text first, each token cutting every remaining text fragment at all its (non-overlapping,
//! leftmost) occurrences. User-defined tokens are always matched; control and unknown tokens only
//! when special-token parsing is requested, otherwise their text is tokenized like any other.
//!
//! Vocabularies can hold thousands of special tokens (Gemma 3: ~6400), so instead of searching
//! the text once per special token, a byte trie first finds which special tokens occur in the text
//! at all; only those are then applied in priority order.

use crate::vocab::{attr, Vocab};

/// A piece of the input after special-token partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// Byte range of ordinary text.
    Text(usize, usize),
    /// A matched special token.
    Token(u32),
}

#[derive(Debug, Default)]
struct Node {
    children: Vec<(u8, u32)>,
    token: Option<u32>,
}

/// The special tokens of a vocabulary, in matching priority order, plus a trie over their texts.
#[derive(Debug)]
pub(crate) struct SpecialTokens {
    /// Ids ordered by text length, longest first (ties by id).
    ordered: Vec<u32>,
    /// Byte trie over the token texts; a node's `token` is the token's position in `ordered`.
    nodes: Vec<Node>,
}

const SPECIAL: u16 = attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN;

impl SpecialTokens {
    pub(crate) fn new(vocab: &Vocab) -> SpecialTokens {
        let mut ordered: Vec<u32> = (0..vocab.len() as u32).filter(|&id| vocab.has(id, SPECIAL)).collect();
        ordered.sort_by(|&a, &b| {
            let (la, lb) = (vocab.texts[a as usize].len(), vocab.texts[b as usize].len());
            lb.cmp(&la).then(a.cmp(&b))
        });
        let mut nodes = vec![Node::default()];
        for (rank, &id) in ordered.iter().enumerate() {
            let mut cur = 0usize;
            for &b in vocab.texts[id as usize].as_bytes() {
                cur = match nodes[cur].children.iter().find(|(c, _)| *c == b) {
                    Some(&(_, next)) => next as usize,
                    None => {
                        nodes.push(Node::default());
                        let next = nodes.len() - 1;
                        nodes[cur].children.push((b, next as u32));
                        next
                    }
                };
            }
            // Duplicate texts cannot occur (lookups are by text), keep the first rank anyway.
            nodes[cur].token.get_or_insert(rank as u32);
        }
        SpecialTokens { ordered, nodes }
    }

    /// Ranks (positions in `ordered`) of the special tokens whose text occurs in `text`.
    fn occurring(&self, text: &[u8]) -> Vec<u32> {
        let mut found = Vec::new();
        for start in 0..text.len() {
            let mut cur = 0usize;
            for &b in &text[start..] {
                match self.nodes[cur].children.iter().find(|(c, _)| *c == b) {
                    Some(&(_, next)) => cur = next as usize,
                    None => break,
                }
                if let Some(rank) = self.nodes[cur].token {
                    found.push(rank);
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Partitions `text` into ordinary text and special tokens.
    pub(crate) fn partition(&self, vocab: &Vocab, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = vec![Fragment::Text(0, text.len())];
        if text.is_empty() {
            return Vec::new();
        }
        let bytes = text.as_bytes();
        for rank in self.occurring(bytes) {
            let id = self.ordered[rank as usize];
            let a = vocab.attr(id);
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let needle = &*vocab.texts[id as usize];
            let mut next = Vec::with_capacity(frags.len() + 2);
            for frag in frags {
                let Fragment::Text(mut lo, hi) = frag else {
                    next.push(frag);
                    continue;
                };
                while let Some(found) = text[lo..hi].find(needle) {
                    let m = lo + found;
                    let mut left_end = m;
                    if a & attr::LSTRIP != 0 {
                        while left_end > lo && is_c_space(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > lo {
                        next.push(Fragment::Text(lo, left_end));
                    }
                    next.push(Fragment::Token(id));
                    lo = m + needle.len();
                    if a & attr::RSTRIP != 0 {
                        while lo < hi && is_c_space(bytes[lo]) {
                            lo += 1;
                        }
                    }
                }
                if lo < hi {
                    next.push(Fragment::Text(lo, hi));
                }
            }
            frags = next;
        }
        frags
    }
}

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{resolve, token_type, VocabSpec};

    fn vocab(tokens: &[(&str, i32)]) -> Vocab {
        let spec = VocabSpec {
            model: "llama".into(),
            tokens: tokens.iter().map(|(s, _)| s.to_string()).collect(),
            token_types: Some(tokens.iter().map(|(_, t)| *t).collect()),
            ..Default::default()
        };
        resolve(spec).unwrap().vocab
    }

    #[test]
    fn control_tokens_only_with_parse_special() {
        let v = vocab(&[("<s>", token_type::CONTROL), ("<|x|>", token_type::USER_DEFINED), ("a", 1)]);
        let s = SpecialTokens::new(&v);
        let text = "a<s>b<|x|>";
        assert_eq!(
            s.partition(&v, text, true),
            [Fragment::Text(0, 1), Fragment::Token(0), Fragment::Text(4, 5), Fragment::Token(1)]
        );
        assert_eq!(s.partition(&v, text, false), [Fragment::Text(0, 5), Fragment::Token(1)]);
    }

    #[test]
    fn longer_special_tokens_win() {
        let v = vocab(&[("<a>", token_type::CONTROL), ("<a><b>", token_type::CONTROL), ("x", 1)]);
        let s = SpecialTokens::new(&v);
        assert_eq!(s.partition(&v, "<a><b><a>", true), [Fragment::Token(1), Fragment::Token(0)]);
    }
}
