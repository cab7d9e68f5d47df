//! Code point classification and the GPT-2 byte-to-unicode mapping.
//!
//! llama.cpp's pre-tokenizers classify every code point into exactly one Unicode general
//! category group (letter, number, punctuation, ...) plus a separate "whitespace" bit taken from
//! the `White_Space` property. The splitters in [`crate::pretokenize`] depend on exactly that
//! classification, so it is reproduced here: the category ranges come from `regex-syntax`'s
//! Unicode tables and are flattened once into a per-code-point byte table for O(1) lookups.

use std::sync::OnceLock;

/// General category group of a code point, as llama.cpp's splitters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Category {
    /// Unassigned (`Cn`) and anything outside the Unicode range.
    Undefined = 0,
    /// `\p{N}`
    Number = 1,
    /// `\p{L}`
    Letter = 2,
    /// `\p{Z}`
    Separator = 3,
    /// `\p{M}`
    Mark = 4,
    /// `\p{P}`
    Punctuation = 5,
    /// `\p{S}`
    Symbol = 6,
    /// `Cc`, `Cf`, `Co` and `Cs`.
    Control = 7,
}

const CATEGORY_MASK: u8 = 0x07;
const WHITESPACE_BIT: u8 = 0x08;
const MAX_CODEPOINT: usize = 0x11_0000;
/// The Unicode version llama.cpp's category tables were generated from.
const UNICODE_AGE: &str = "V15_1";

/// Classification of one code point: its category plus whether it is whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CpFlags(u8);

impl CpFlags {
    pub(crate) fn category(self) -> Category {
        match self.0 & CATEGORY_MASK {
            1 => Category::Number,
            2 => Category::Letter,
            3 => Category::Separator,
            4 => Category::Mark,
            5 => Category::Punctuation,
            6 => Category::Symbol,
            7 => Category::Control,
            _ => Category::Undefined,
        }
    }
    pub(crate) fn is_letter(self) -> bool {
        self.category() == Category::Letter
    }
    pub(crate) fn is_number(self) -> bool {
        self.category() == Category::Number
    }
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & WHITESPACE_BIT != 0
    }
}

/// Code points with the Unicode `White_Space` property (PropList.txt). This is the set llama.cpp
/// treats as `\s`; notably it excludes U+001C..U+001F, which some regex engines include.
const WHITESPACE: &[(u32, u32)] = &[
    (0x09, 0x0D),
    (0x20, 0x20),
    (0x85, 0x85),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
];

/// The Unicode class ranges of a `\p{..}` expression, via `regex-syntax`'s tables.
pub(crate) fn class_ranges(expr: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    let hir = regex_syntax::ParserBuilder::new().build().parse(expr).expect("built-in Unicode class expression parses");
    match hir.kind() {
        HirKind::Class(Class::Unicode(cls)) => {
            cls.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect()
        }
        _ => unreachable!("\\p{{..}} always parses to a Unicode class"),
    }
}

fn table() -> &'static [u8] {
    static TABLE: OnceLock<Box<[u8]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![Category::Undefined as u8; MAX_CODEPOINT].into_boxed_slice();
        let groups: [(&str, Category); 9] = [
            (r"\p{N}", Category::Number),
            (r"\p{L}", Category::Letter),
            (r"\p{Z}", Category::Separator),
            (r"\p{M}", Category::Mark),
            (r"\p{P}", Category::Punctuation),
            (r"\p{S}", Category::Symbol),
            (r"\p{Cc}", Category::Control),
            (r"\p{Cf}", Category::Control),
            (r"\p{Co}", Category::Control),
        ];
        for (expr, cat) in groups {
            // Restricted to the Unicode version of llama.cpp's tables: code points assigned
            // later are unassigned there, and classifying them differently changes splits.
            let expr = format!("[{expr}&&\\p{{Age={UNICODE_AGE}}}]");
            for (lo, hi) in class_ranges(&expr) {
                t[lo as usize..=hi as usize].fill(cat as u8);
            }
        }
        // Surrogates cannot occur in a `char`, but keep the table complete.
        t[0xD800..=0xDFFF].fill(Category::Control as u8);
        for &(lo, hi) in WHITESPACE {
            for v in &mut t[lo as usize..=hi as usize] {
                *v |= WHITESPACE_BIT;
            }
        }
        t
    })
}

/// Classification of `c`.
pub(crate) fn flags(c: char) -> CpFlags {
    CpFlags(table()[c as usize])
}

/// The byte-level BPE alphabet (GPT-2's `bytes_to_unicode`): printable Latin-1 bytes map to
/// themselves, the remaining 68 bytes map to U+0100.. in byte order. Tokens of byte-level BPE
/// vocabularies are spelled in this alphabet, so text is translated into it before merging and
/// back out of it when rendering pieces.
pub(crate) struct ByteAlphabet {
    to_char: [char; 256],
}

impl ByteAlphabet {
    pub(crate) fn get() -> &'static ByteAlphabet {
        static ALPHABET: OnceLock<ByteAlphabet> = OnceLock::new();
        ALPHABET.get_or_init(|| {
            let printable =
                |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
            let mut to_char = ['\0'; 256];
            let mut next = 0x100u32;
            for b in 0..256u32 {
                let cp = if printable(b) {
                    b
                } else {
                    next += 1;
                    next - 1
                };
                to_char[b as usize] = char::from_u32(cp).expect("alphabet is in the BMP");
            }
            ByteAlphabet { to_char }
        })
    }

    /// The alphabet character standing for byte `b`.
    pub(crate) fn encode(&self, b: u8) -> char {
        self.to_char[b as usize]
    }

    /// The byte a character of the alphabet stands for, or `None` if `c` is not in it.
    pub(crate) fn decode(&self, c: char) -> Option<u8> {
        let cp = c as u32;
        match cp {
            0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(cp as u8),
            0x100..=0x143 => Some(self.non_printable_byte(cp - 0x100)),
            _ => None,
        }
    }

    /// The `n`-th (0-based) byte that is not printable, i.e. the byte mapped to U+0100 + n.
    fn non_printable_byte(&self, n: u32) -> u8 {
        // 0x00..=0x20 (33 bytes), 0x7F..=0xA0 (34 bytes), 0xAD (1 byte) in order.
        match n {
            0..=32 => n as u8,
            33..=66 => (0x7F + (n - 33)) as u8,
            _ => 0xAD,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_of_ascii_and_beyond() {
        assert_eq!(flags('a').category(), Category::Letter);
        assert_eq!(flags('7').category(), Category::Number);
        assert_eq!(flags('!').category(), Category::Punctuation);
        assert_eq!(flags('$').category(), Category::Symbol);
        assert_eq!(flags(' ').category(), Category::Separator);
        assert!(flags(' ').is_whitespace());
        assert!(flags('\n').is_whitespace());
        assert_eq!(flags('\n').category(), Category::Control);
        assert!(!flags('\u{1C}').is_whitespace());
        assert!(flags('\u{3000}').is_whitespace());
        assert_eq!(flags('\u{0301}').category(), Category::Mark);
        assert_eq!(flags('中').category(), Category::Letter);
        assert_eq!(flags('\u{0378}').category(), Category::Undefined);
        assert_eq!(flags('\u{E000}').category(), Category::Control);
        assert_eq!(flags('😀').category(), Category::Symbol);
        assert_eq!(flags('\u{200D}').category(), Category::Control);
        // Assigned in Unicode 16, unassigned in the reference tables.
        assert_eq!(flags('\u{1C89}').category(), Category::Undefined);
    }

    #[test]
    fn byte_alphabet_round_trips() {
        let a = ByteAlphabet::get();
        assert_eq!(a.encode(b' '), 'Ġ');
        assert_eq!(a.encode(b'\n'), 'Ċ');
        assert_eq!(a.encode(b'a'), 'a');
        for b in 0..=255u8 {
            assert_eq!(a.decode(a.encode(b)), Some(b), "byte {b:#x}");
        }
        assert_eq!(a.decode('中'), None);
    }
}
