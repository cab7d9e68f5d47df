//! Turning tokens back into text: per-token pieces, whole-sequence detokenization, and a
//! streaming decoder that never emits half a UTF-8 character.

use crate::unicode::ByteAlphabet;
use crate::vocab::{attr, Kind};
use crate::Tokenizer;

impl Tokenizer {
    /// Appends the bytes of token `id` to `out`; see [`Tokenizer::token_to_piece`].
    pub(crate) fn piece_into(&self, id: u32, special: bool, out: &mut Vec<u8>) {
        let v = &self.vocab;
        let Some(text) = v.texts.get(id as usize) else { return };
        let a = v.attr(id);
        if !special && a & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return;
        }
        if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            out.extend_from_slice(text.as_bytes());
        } else if a & attr::NORMAL != 0 {
            if matches!(self.kind, Kind::Spm | Kind::WordPiece) || self.escape_whitespaces {
                unescape_whitespace(text, out);
            } else {
                decode_byte_alphabet(text, out);
            }
        } else if a & attr::BYTE != 0 {
            out.push(hex_byte(text));
        }
        // Unused and undefined tokens render as nothing.
    }

    /// Detokenizes `ids` into raw bytes (see [`Tokenizer::decode`]).
    pub fn decode_bytes(&self, ids: &[u32], special: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut piece = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            piece.clear();
            self.piece_into(id, special, &mut piece);
            // A model that prepends a space when tokenizing loses it again here.
            let skip = usize::from(i == 0 && self.add_space_prefix && piece.first() == Some(&b' '));
            out.extend_from_slice(&piece[skip..]);
        }
        if self.clean_spaces {
            clean_up_spaces(&mut out);
        }
        out
    }
}

/// `▁` back to a space.
fn unescape_whitespace(text: &str, out: &mut Vec<u8>) {
    let mut rest = text;
    while let Some(p) = rest.find('▁') {
        out.extend_from_slice(&rest.as_bytes()[..p]);
        out.push(b' ');
        rest = &rest[p + '▁'.len_utf8()..];
    }
    out.extend_from_slice(rest.as_bytes());
}

/// Byte-level alphabet back to bytes. A character outside the alphabet cannot come from
/// tokenization; llama.cpp renders it as a visible marker, reproduced here.
fn decode_byte_alphabet(text: &str, out: &mut Vec<u8>) {
    let alphabet = ByteAlphabet::get();
    for c in text.chars() {
        match alphabet.decode(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
}

/// The byte of a `<0xXX>` token.
fn hex_byte(text: &str) -> u8 {
    text.get(3..5).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0)
}

/// Undoes the spaces a word-level tokenizer put before punctuation and contractions (the
/// `clean_up_tokenization_spaces` option of BPE vocabularies), in place, with the exact
/// in-place semantics of the reference so that odd inputs (`" ' ' "`) come out the same.
fn clean_up_spaces(t: &mut Vec<u8>) {
    // " ?", " !", " .", " ,": drop the space.
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);

    // " ' ": drop both spaces around a lone apostrophe.
    let n = t.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = t[i];
        if x == b'\'' && i + 1 < n && t[i - 1] == b' ' && t[i + 1] == b' ' {
            total -= 1;
            i += 1;
            t[i] = 0;
        }
        t[total] = x;
        total += 1;
        i += 1;
    }
    t.truncate(total);

    // " 's", " 'm", " 're", " 've": drop the space.
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = t[i + 1];
            if matches!(x1, b's' | b'm') {
                total -= 1;
            } else if !matches!(x1, b't' | b'd') && i + 2 < n {
                let x2 = t[i + 2];
                if matches!((x1, x2), (b'r', b'e') | (b'v', b'e')) {
                    total -= 1;
                }
            }
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
}

/// Streams text from tokens as they are generated. Each [`push`](Self::push) returns the text
/// that became complete: bytes of a character split across tokens (byte-fallback tokens of an
/// emoji, say) are held back until the character is whole. The output is the concatenation of
/// the tokens' pieces, as a streaming server sends it (no leading-space removal or
/// clean-up, unlike [`Tokenizer::decode`]).
pub struct IncrementalDecoder<'a> {
    tokenizer: &'a Tokenizer,
    state: DecodeState,
}

impl<'a> IncrementalDecoder<'a> {
    pub(crate) fn new(tokenizer: &'a Tokenizer, special: bool) -> Self {
        IncrementalDecoder { tokenizer, state: DecodeState::new(special) }
    }

    /// Adds one token; returns the newly completed text (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        self.state.push(self.tokenizer, id)
    }

    /// Flushes whatever is still held back, replacing an incomplete character with U+FFFD.
    pub fn finish(&mut self) -> String {
        self.state.finish()
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.state.pending
    }
}

/// What an [`IncrementalDecoder`] keeps between tokens, without the borrow of the tokenizer:
/// for callers that keep many streams alive across steps (a server's running sequences).
#[derive(Debug, Clone, Default)]
pub struct DecodeState {
    special: bool,
    pending: Vec<u8>,
}

impl DecodeState {
    pub fn new(special: bool) -> DecodeState {
        DecodeState { special, pending: Vec::new() }
    }

    /// Adds one token; returns the newly completed text (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        tokenizer.piece_into(id, self.special, &mut self.pending);
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // This prefix was just validated, so the conversion cannot fail.
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).unwrap_or_default());
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            start = valid;
                            break;
                        }
                        // Bytes that can never become a character: replace them now.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + bad;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Flushes whatever is still held back, replacing an incomplete character with U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &[u8]) -> Vec<u8> {
        let mut v = s.to_vec();
        clean_up_spaces(&mut v);
        v
    }

    #[test]
    fn clean_up_spaces_matches_reference_quirks() {
        assert_eq!(clean(b"Hello , world !"), b"Hello, world!");
        assert_eq!(clean(b"it 's ok"), b"it's ok");
        assert_eq!(clean(b"I 'll go"), b"I 'll go");
        assert_eq!(clean(b"we 're here"), b"we're here");
        assert_eq!(clean(b"a ' b"), b"a'b");
        assert_eq!(clean(b"x ' ' y"), b"x'' y");
        assert_eq!(clean(b""), b"");
    }

    #[test]
    fn hex_byte_parses_byte_tokens() {
        assert_eq!(hex_byte("<0x0A>"), 0x0A);
        assert_eq!(hex_byte("<0xF0>"), 0xF0);
    }
}
