//! WordPiece, the tokenizer of BERT-family models (`tokenizer.ggml.model = "bert"`).
//!
//! Text is normalised and split the way Hugging Face's `BertNormalizer` and
//! `BertPreTokenizer` do (the tokenizers these models were trained with): control characters
//! dropped, whitespace unified, CJK ideographs made words of their own, accents stripped
//! (canonical decomposition, then nonspacing marks removed), lowercased, then split at
//! whitespace with every punctuation character its own word. Each word is then matched
//! greedily, longest piece first, against the vocabulary; a word with no complete match, or
//! longer than [`MAX_WORD_CHARS`], becomes `[UNK]`.
//!
//! llama.cpp's converter stores word-initial pieces with a leading `▁` and continuation pieces
//! bare (Hugging Face's `##` prefix removed), so a word is matched as `▁` + word.
//!
//! Where llama.cpp's own WordPiece differs from Hugging Face's, Kiln follows Hugging Face:
//! llama.cpp strips every mark (`\p{M}`, not only nonspacing `Mn`), lowercases one code point
//! to one, keeps `U+0085` as whitespace rather than dropping it as a control character, and has
//! no word-length limit.

use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;

use crate::unicode::class_ranges;
use crate::vocab::Vocab;

/// Words longer than this (in characters) are `[UNK]` without matching (Hugging Face's
/// `max_input_chars_per_word` default, which BERT tokenizers keep).
pub(crate) const MAX_WORD_CHARS: usize = 100;

/// `tokenizer.ggml.normalizer.*`: how text is normalised before splitting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Normalizer {
    pub(crate) lowercase: bool,
    pub(crate) strip_accents: bool,
}

/// Tokenizes `text` (no special tokens) onto `out`.
pub(crate) fn encode(vocab: &Vocab, unk: Option<u32>, norm: Normalizer, text: &str, out: &mut Vec<u32>) {
    let normalized = normalize(text, norm);
    let mut piece = String::new();
    for word in split_words(&normalized) {
        encode_word(vocab, unk, word, &mut piece, out);
    }
}

/// The text as `BertNormalizer` leaves it.
fn normalize(text: &str, norm: Normalizer) -> String {
    let mut cleaned = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\0' || c == '\u{FFFD}' || is_control(c) {
            continue;
        }
        if is_cjk_ideograph(c) {
            cleaned.extend([' ', c, ' ']);
        } else if is_whitespace(c) {
            cleaned.push(' ');
        } else {
            cleaned.push(c);
        }
    }
    let stripped: String =
        if norm.strip_accents { cleaned.nfd().filter(|&c| !is_nonspacing_mark(c)).collect() } else { cleaned };
    if norm.lowercase {
        stripped.chars().flat_map(char::to_lowercase).collect()
    } else {
        stripped
    }
}

/// Words of normalised text: split at whitespace, punctuation characters on their own.
fn split_words(text: &str) -> impl Iterator<Item = &str> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_whitespace(c) || is_punctuation(c) {
            if let Some(s) = start.take() {
                words.push(&text[s..i]);
            }
            if is_punctuation(c) {
                words.push(&text[i..i + c.len_utf8()]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push(&text[s..]);
    }
    words.into_iter()
}

/// Greedy longest-match of one word; all of it or `[UNK]`.
fn encode_word(vocab: &Vocab, unk: Option<u32>, word: &str, piece: &mut String, out: &mut Vec<u32>) {
    let first = out.len();
    let bounds: Vec<usize> = word.char_indices().map(|(i, _)| i).chain([word.len()]).collect();
    let n_chars = bounds.len() - 1;
    let mut start = 0;
    let matched = n_chars <= MAX_WORD_CHARS
        && loop {
            if start == n_chars {
                break true;
            }
            let found = (start + 1..=n_chars).rev().find_map(|end| {
                piece.clear();
                if start == 0 {
                    piece.push('▁');
                }
                piece.push_str(&word[bounds[start]..bounds[end]]);
                vocab.id(piece).map(|id| (id, end))
            });
            match found {
                Some((id, end)) => {
                    out.push(id);
                    start = end;
                }
                None => break false,
            }
        };
    if !matched {
        out.truncate(first);
        out.extend(unk);
    }
}

/// Ranges of a Unicode class, sorted, for binary search.
fn contains(ranges: &[(u32, u32)], c: char) -> bool {
    let cp = c as u32;
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn class(cell: &'static OnceLock<Vec<(u32, u32)>>, expr: &str) -> &'static [(u32, u32)] {
    cell.get_or_init(|| class_ranges(expr))
}

/// Tab, newline and carriage return count as whitespace, not control characters.
fn is_whitespace(c: char) -> bool {
    c.is_whitespace()
}

/// Control, format and private-use characters (`Cc`, `Cf`, `Co`; unassigned code points stay)
/// apart from the whitespace controls.
fn is_control(c: char) -> bool {
    static OTHER: OnceLock<Vec<(u32, u32)>> = OnceLock::new();
    !matches!(c, '\t' | '\n' | '\r') && contains(class(&OTHER, r"[\p{Cc}\p{Cf}\p{Co}]"), c)
}

fn is_nonspacing_mark(c: char) -> bool {
    static MN: OnceLock<Vec<(u32, u32)>> = OnceLock::new();
    contains(class(&MN, r"\p{Mn}"), c)
}

/// ASCII punctuation and symbols, and Unicode punctuation (`\p{P}`).
fn is_punctuation(c: char) -> bool {
    static P: OnceLock<Vec<(u32, u32)>> = OnceLock::new();
    c.is_ascii_punctuation() || contains(class(&P, r"\p{P}"), c)
}

/// The CJK ideograph blocks BERT isolates (as Hugging Face lists them, including its
/// 0x2B920 start of Extension E).
fn is_cjk_ideograph(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNCASED: Normalizer = Normalizer { lowercase: true, strip_accents: true };

    #[test]
    fn normalisation_drops_controls_strips_accents_and_lowercases() {
        assert_eq!(normalize("Crème\u{7}\tBRÛLÉE", UNCASED), "creme brulee");
        assert_eq!(normalize("Crème", Normalizer { lowercase: false, strip_accents: false }), "Crème");
        assert_eq!(normalize("日本", UNCASED), " 日  本 ");
    }

    #[test]
    fn words_split_at_whitespace_and_punctuation() {
        let words: Vec<&str> = split_words("hello,  world!! a+b «x»").collect();
        assert_eq!(words, ["hello", ",", "world", "!", "!", "a", "+", "b", "«", "x", "»"]);
    }
}
