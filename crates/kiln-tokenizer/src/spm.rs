//! SentencePiece (BPE variant) merging by token score, as llama.cpp's SPM tokenizer does it.
//!
//! Starting from single code points, the adjacent pair whose concatenation is a token with the
//! highest score is merged first (leftmost on ties), until no adjacent pair forms a token. Any
//! symbol left that is not a token is emitted as `<0xXX>` byte tokens (or, in a vocabulary
//! without byte tokens, one unknown token per byte). The input must already have spaces escaped
//! as `▁`.

use crate::merge::merge;
use crate::vocab::Vocab;

/// Tokenizes `text` (spaces already escaped) and appends the ids to `out`.
pub(crate) fn encode(vocab: &Vocab, unk: Option<u32>, text: &str, out: &mut Vec<u32>) {
    let symbols = merge(text, |pair, _| vocab.id(pair).map(|id| vocab.scores[id as usize]));
    for s in &symbols {
        let piece = &text[s.start..s.start + s.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => {
                for b in piece.bytes() {
                    out.extend(byte_token(vocab, b).or(unk));
                }
            }
        }
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
