//! Byte-level BPE pre-tokenization: splitting text into words before merges run.
//!
//! llama.cpp does not run a model's pre-tokenizer regex as one expression. Each pre-type has a
//! *list* of expressions applied in turn: every expression re-splits each chunk produced by the
//! previous one, keeping both the matches and the text between them as chunks. The widely used
//! expressions (GPT-2's and the Llama-3/Qwen2 family) are hand-written scanners whose behaviour
//! at chunk ends differs subtly from a real regex engine, and every other expression runs on a
//! "collapsed" copy of the text where each non-ASCII code point is replaced by a stand-in for its
//! category. Token-for-token compatibility needs all three mechanisms, reproduced here.

use crate::error::TokenizerError;
use crate::unicode::{flags, ByteAlphabet, Category, CpFlags};

/// How one expression of a pre-type splits a chunk.
#[derive(Debug)]
enum Stage {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
    /// The Llama-3 expression (`\p{N}{1,3}`, `max_digits == 3`) or Qwen2's (`\p{N}`, `1`):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Llama3 { max_digits: usize },
    /// `[^\n]+|[\n]+`
    Newlines,
    /// Any other expression, run by a regex engine.
    Regex(RegexStage),
}

#[derive(Debug)]
struct RegexStage {
    regex: fancy_regex::Regex,
    /// Whether the expression runs on the category-collapsed text (it uses `\p{..}`) or on the
    /// code points themselves (with non-ASCII whitespace replaced by U+000B).
    collapsed: bool,
}

/// A named pre-tokenizer: its split stages plus the vocabulary flags llama.cpp ties to it.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    stages: Vec<Stage>,
    /// Whether words are translated into the byte-level alphabet before merging (false only for
    /// SentencePiece-style BPE such as Gemma 4, whose tokens are raw UTF-8).
    pub(crate) byte_encode: bool,
}

/// Vocabulary behaviour llama.cpp attaches to a pre-tokenizer name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PreFlags {
    pub(crate) clean_spaces: bool,
    pub(crate) ignore_merges: bool,
    pub(crate) add_bos: bool,
    pub(crate) no_bos: bool,
    pub(crate) escape_whitespaces: bool,
    pub(crate) newline_words_whole: bool,
}

impl Default for PreFlags {
    fn default() -> Self {
        PreFlags {
            clean_spaces: true,
            ignore_merges: false,
            add_bos: false,
            no_bos: false,
            escape_whitespaces: false,
            newline_words_whole: false,
        }
    }
}

const CONTRACTIONS_CI: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

enum S {
    Gpt2,
    Llama3,
    Qwen2,
    Newlines,
    Re(String),
}

fn re(s: &str) -> S {
    S::Re(s.to_string())
}

/// The stages and flags of pre-tokenizer `name` (the value of `tokenizer.ggml.pre`).
fn lookup(name: &str) -> Option<(Vec<S>, PreFlags, bool)> {
    let f = PreFlags::default;
    let no_clean = || PreFlags { clean_spaces: false, ..f() };
    let gpt2_num_isolated = || vec![re(r"\p{N}"), S::Gpt2];
    let poro = || re(r" ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+");
    let lookahead_words = |extra: &str| {
        format!(
            r"[^\r\n\p{{L}}\p{{N}}]?((?=[\p{{L}}])([^a-z]))*((?=[\p{{L}}])([^A-Z]))+{extra}|[^\r\n\p{{L}}\p{{N}}]?((?=[\p{{L}}])([^a-z]))+((?=[\p{{L}}])([^A-Z]))*{extra}"
        )
    };
    let mut byte_encode = true;
    let (stages, flags) = match name {
        "default" | "" => (vec![re(r"[\p{P}\$\+<=>\^~\|]+"), S::Gpt2, re(r"\p{N}+"), re("[0-9][0-9][0-9]")], f()),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
        | "jina-v5-nano" => (vec![S::Llama3], PreFlags { ignore_merges: true, add_bos: true, ..f() }),
        "dbrx" | "smaug-bpe" => (vec![S::Llama3], f()),
        "deepseek-llm" => (
            vec![
                re("[\r\n]"),
                re(
                    r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+",
                ),
                re(r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+"),
                re("\\s+$"),
                re(r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+"),
                re(r"\p{N}+"),
            ],
            no_clean(),
        ),
        "deepseek-coder" => (
            vec![
                re("[\r\n]"),
                re(r"\s?\p{L}+"),
                re(r"\s?\p{P}+"),
                re(r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+"),
                re(r"\p{N}"),
            ],
            no_clean(),
        ),
        "deepseek-v3" | "hunyuan-dense" | "joyai-llm" | "hy_v4" => (
            vec![
                re(r"\p{N}{1,3}"),
                re(r"[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+"),
                re(
                    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
                ),
            ],
            no_clean(),
        ),
        "falcon" => (vec![re(r"[\p{P}\$\+<=>\^~\|`]+"), S::Gpt2, re("[0-9][0-9][0-9]")], f()),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => (gpt2_num_isolated(), f()),
        "command-r" | "smollm" => (gpt2_num_isolated(), no_clean()),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de" | "a.x-4.0" | "mellum"
        | "modern-bert" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "exaone4" => {
            (vec![S::Gpt2], f())
        }
        "trillion" | "granite-docling" => (vec![S::Gpt2], no_clean()),
        "stablelm2" => (vec![S::Qwen2], f()),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "hunyuan" | "solar-open" | "grok-2" => {
            (vec![S::Qwen2], no_clean())
        }
        "poro-chat" => (vec![poro()], no_clean()),
        "bloom" | "gpt3-finnish" => (vec![poro()], f()),
        "viking" => (vec![poro(), re(r"\p{N}")], no_clean()),
        "chatglm-bpe" => (vec![S::Llama3], PreFlags { no_bos: true, ..f() }),
        "glm4" | "glm5" => (vec![S::Llama3], PreFlags { no_bos: true, ignore_merges: true, ..f() }),
        "tekken" => (
            vec![re(&format!(
                r"{}|\p{{N}}| ?[^\s\p{{L}}\p{{N}}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
                lookahead_words("")
            ))],
            PreFlags { clean_spaces: false, ignore_merges: true, add_bos: true, ..f() },
        ),
        "chameleon" => (
            vec![
                re("<sentinel:[0-9]+>"),
                re("(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z"),
                re("([\\t\\n]|    |  )"),
                re(r"\p{N}"),
                re(r"[\p{P}!-/:-@\[-`{-~]"),
                S::Gpt2,
            ],
            PreFlags { clean_spaces: false, add_bos: true, ..f() },
        ),
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => (
            vec![re(&format!(
                r"{}|\p{{N}}{{1,3}}| ?[^\s\p{{L}}\p{{N}}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
                lookahead_words(&format!("{CONTRACTIONS_CI}?"))
            ))],
            no_clean(),
        ),
        "seed-coder" => (
            vec![re(&format!(
                r"{CONTRACTIONS_CI}|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}{{1}}| ?[^\s\p{{L}}\p{{N}}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"
            ))],
            no_clean(),
        ),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => (
            vec![re(
                r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
            )],
            no_clean(),
        ),
        "ufakzeka" => {
            (vec![re(r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")], no_clean())
        }
        "gemma4" | "granite-embed-multi-311m" => {
            byte_encode = false;
            (vec![S::Newlines], PreFlags { escape_whitespaces: true, newline_words_whole: true, ..f() })
        }
        _ => return None,
    };
    Some((stages, flags, byte_encode))
}

impl PreTokenizer {
    /// Builds the pre-tokenizer named `name`, or reports it as unsupported.
    pub(crate) fn new(name: &str) -> Result<(PreTokenizer, PreFlags), TokenizerError> {
        let (specs, flags, byte_encode) =
            lookup(name).ok_or_else(|| TokenizerError::UnsupportedPreTokenizer(name.to_string()))?;
        let mut stages = Vec::with_capacity(specs.len());
        for spec in specs {
            stages.push(match spec {
                S::Gpt2 => Stage::Gpt2,
                S::Llama3 => Stage::Llama3 { max_digits: 3 },
                S::Qwen2 => Stage::Llama3 { max_digits: 1 },
                S::Newlines => Stage::Newlines,
                S::Re(expr) => Stage::Regex(RegexStage::new(&expr)?),
            });
        }
        Ok((PreTokenizer { stages, byte_encode }, flags))
    }

    /// Splits `text` into words; byte-level vocabularies get them in the byte alphabet.
    pub(crate) fn split(&self, text: &str) -> Vec<String> {
        let cps: Vec<char> = text.chars().collect();
        let mut chunks = vec![(0usize, cps.len())];
        for stage in &self.stages {
            let mut next = Vec::with_capacity(chunks.len() * 2);
            let mut mapped: Option<Mapped> = None;
            for &(lo, hi) in &chunks {
                let mut out = Splitter { cps: &cps, lo, hi, prev_end: lo, out: &mut next };
                match stage {
                    Stage::Gpt2 => out.gpt2(),
                    Stage::Llama3 { max_digits } => out.llama3(*max_digits),
                    Stage::Newlines => out.newlines(),
                    Stage::Regex(rs) => {
                        let m = mapped.get_or_insert_with(|| Mapped::new(&cps, rs.collapsed));
                        rs.split(m, lo, hi, out.out);
                    }
                }
            }
            chunks = next;
        }
        let alphabet = ByteAlphabet::get();
        chunks
            .into_iter()
            .filter(|(lo, hi)| hi > lo)
            .map(|(lo, hi)| {
                let word: String = cps[lo..hi].iter().collect();
                if self.byte_encode {
                    word.bytes().map(|b| alphabet.encode(b)).collect()
                } else {
                    word
                }
            })
            .collect()
    }
}

/// The text as a regex stage sees it, plus where each code point starts in it.
struct Mapped {
    text: String,
    /// Byte offset in `text` of code point `i`; one extra entry for the end.
    starts: Vec<usize>,
}

/// Stand-ins for non-ASCII code points in collapsed text, one per category the expressions can
/// name (private-use code points, so they never collide with the ASCII that stays as is).
fn category_stand_in(cat: Category) -> char {
    match cat {
        Category::Number => '\u{F0D1}',
        Category::Letter => '\u{F0D2}',
        Category::Punctuation => '\u{F0D3}',
        Category::Mark => '\u{F0D4}',
        Category::Symbol => '\u{F0D5}',
        _ => '\u{F0D0}',
    }
}

impl Mapped {
    fn new(cps: &[char], collapsed: bool) -> Mapped {
        let mut text = String::with_capacity(cps.len());
        let mut starts = Vec::with_capacity(cps.len() + 1);
        for &c in cps {
            starts.push(text.len());
            let m = if c.is_ascii() {
                c
            } else {
                let f: CpFlags = flags(c);
                if f.is_whitespace() {
                    // Non-ASCII whitespace must still match `\s`.
                    '\u{0B}'
                } else if collapsed {
                    category_stand_in(f.category())
                } else {
                    c
                }
            };
            text.push(m);
        }
        starts.push(text.len());
        Mapped { text, starts }
    }

    fn cp_index(&self, byte: usize) -> usize {
        self.starts.partition_point(|&s| s < byte)
    }
}

impl RegexStage {
    fn new(expr: &str) -> Result<RegexStage, TokenizerError> {
        let collapsed = ["N", "L", "P", "M", "S", "Lu", "Ll", "Lt", "Lm", "Lo"]
            .iter()
            .any(|c| expr.contains(&format!("\\p{{{c}}}")));
        let pattern = if collapsed { collapse_expression(expr) } else { expr.to_string() };
        let regex = fancy_regex::Regex::new(&pattern)
            .map_err(|e| TokenizerError::Regex { pattern: expr.to_string(), message: e.to_string() })?;
        Ok(RegexStage { regex, collapsed })
    }

    /// Splits code points `lo..hi` at the matches: both matches and the gaps between them
    /// become chunks.
    fn split(&self, m: &Mapped, lo: usize, hi: usize, out: &mut Vec<(usize, usize)>) {
        let base = m.starts[lo];
        let hay = &m.text[base..m.starts[hi]];
        let mut cur = lo;
        for found in self.regex.find_iter(hay) {
            let Ok(found) = found else {
                // The backtracking limit was hit: keep the rest of the chunk whole.
                break;
            };
            let s = m.cp_index(base + found.start());
            let e = m.cp_index(base + found.end());
            if s > cur {
                out.push((cur, s));
            }
            if e > s {
                out.push((s, e));
            }
            cur = e;
        }
        if cur < hi {
            out.push((cur, hi));
        }
    }
}

/// Rewrites an expression for collapsed text: each `\p{X}` becomes a class of X's stand-in plus
/// the ASCII members of X (only `L`, `N`, `P`, `M`, `S` and the letter sub-categories, which all
/// collapse to `L`).
fn collapse_expression(expr: &str) -> String {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::with_capacity(expr.len() * 2);
    let mut inside = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let escaped = i > 0 && chars[i - 1] == '\\';
        if c == '[' && !escaped {
            inside = true;
            out.push(c);
            i += 1;
            continue;
        }
        if c == ']' && inside && !escaped {
            inside = false;
            out.push(c);
            i += 1;
            continue;
        }
        if c == '\\' && chars.get(i + 1) == Some(&'p') && chars.get(i + 2) == Some(&'{') {
            if let Some(close) = chars[i + 3..].iter().position(|&ch| ch == '}') {
                let name: String = chars[i + 3..i + 3 + close].iter().collect();
                let cat = match name.as_str() {
                    "N" => Some(Category::Number),
                    "L" | "Lu" | "Ll" | "Lt" | "Lm" | "Lo" => Some(Category::Letter),
                    "P" => Some(Category::Punctuation),
                    "M" => Some(Category::Mark),
                    "S" => Some(Category::Symbol),
                    _ => None,
                };
                if let Some(cat) = cat {
                    if !inside {
                        out.push('[');
                    }
                    out.push(category_stand_in(cat));
                    for b in 0u8..128 {
                        if flags(b as char).category() == cat {
                            out.push_str(&format!("\\x{{{b:02X}}}"));
                        }
                    }
                    if !inside {
                        out.push(']');
                    }
                    i += 3 + close + 1;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Hand-written scanners over the code points `lo..hi` of one chunk. Positions outside the
/// chunk read as "nothing", which is what makes e.g. `\s+(?!\S)` keep a trailing whitespace run
/// whole at a chunk end.
struct Splitter<'a> {
    cps: &'a [char],
    lo: usize,
    hi: usize,
    prev_end: usize,
    out: &'a mut Vec<(usize, usize)>,
}

impl Splitter<'_> {
    fn cp(&self, pos: usize) -> Option<char> {
        (self.lo <= pos && pos < self.hi).then(|| self.cps[pos])
    }
    fn fl(&self, pos: usize) -> Option<CpFlags> {
        self.cp(pos).map(flags)
    }
    fn letter(&self, pos: usize) -> bool {
        self.fl(pos).is_some_and(CpFlags::is_letter)
    }
    fn number(&self, pos: usize) -> bool {
        self.fl(pos).is_some_and(CpFlags::is_number)
    }
    fn space(&self, pos: usize) -> bool {
        self.fl(pos).is_some_and(CpFlags::is_whitespace)
    }
    /// Present and none of whitespace, letter, number: `[^\s\p{L}\p{N}]`.
    fn other(&self, pos: usize) -> bool {
        self.fl(pos).is_some_and(|f| !(f.is_whitespace() || f.is_letter() || f.is_number()))
    }
    /// Ends the current word at `end` (empty words are dropped).
    fn emit(&mut self, end: usize) {
        if end > self.prev_end {
            self.out.push((self.prev_end, end));
        }
        self.prev_end = end;
    }

    /// Length of a contraction starting at `pos` (`'s`, `'re`, ...), 0 if none.
    fn contraction(&self, pos: usize, fold_case: bool) -> usize {
        if self.cp(pos) != Some('\'') || pos + 1 >= self.hi {
            return 0;
        }
        let low = |c: Option<char>| c.map(|c| if fold_case { c.to_ascii_lowercase() } else { c });
        let n1 = low(self.cp(pos + 1));
        if matches!(n1, Some('s' | 't' | 'm' | 'd')) {
            return 2;
        }
        if pos + 2 < self.hi {
            let n2 = low(self.cp(pos + 2));
            if matches!((n1, n2), (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))) {
                return 3;
            }
        }
        0
    }

    /// Whitespace handling shared by both scanners: `\s+(?!\S)|\s+`, returns false if `pos`
    /// does not start whitespace.
    fn trailing_whitespace(&mut self, pos: &mut usize, n: usize) -> bool {
        if n > 1 && self.cp(*pos + n).is_some() {
            *pos += n - 1;
            self.emit(*pos);
            return true;
        }
        if n > 0 {
            *pos += n;
            self.emit(*pos);
            return true;
        }
        false
    }

    fn gpt2(&mut self) {
        let mut pos = self.lo;
        while pos < self.hi {
            let c = self.cps[pos];
            let n = self.contraction(pos, false);
            if n > 0 {
                pos += n;
                self.emit(pos);
                continue;
            }
            // ` ?X+` for X in letters, numbers, other: the optional space only counts when the
            // class continues right after it.
            let at = if c == ' ' { pos + 1 } else { pos };
            let class: Option<fn(&Self, usize) -> bool> = if self.letter(at) {
                Some(Self::letter)
            } else if self.number(at) {
                Some(Self::number)
            } else if self.other(at) {
                Some(Self::other)
            } else {
                None
            };
            if let Some(class) = class {
                pos = at;
                while class(self, pos) {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            let mut n = 0;
            while self.space(pos + n) {
                n += 1;
            }
            if self.trailing_whitespace(&mut pos, n) {
                continue;
            }
            pos += 1;
            self.emit(pos);
        }
    }

    fn llama3(&mut self, max_digits: usize) {
        let mut pos = self.lo;
        while pos < self.hi {
            let c = self.cps[pos];
            let f = flags(c);
            let n = self.contraction(pos, true);
            if n > 0 {
                pos += n;
                self.emit(pos);
                continue;
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == '\r' || c == '\n' || f.is_number()) && (f.is_letter() || self.letter(pos + 1)) {
                pos += 1;
                while self.letter(pos) {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            // \p{N}{1,max_digits}
            if f.is_number() {
                let mut start = pos;
                while self.number(pos) {
                    pos += 1;
                    if pos - start >= max_digits {
                        self.emit(pos);
                        start = pos;
                    }
                }
                self.emit(pos);
                continue;
            }
            // ' '?[^\s\p{L}\p{N}]+[\r\n]*  (a lone space at the chunk end also lands here)
            let at = if c == ' ' { pos + 1 } else { pos };
            let f2 = self.fl(at);
            if !f2.is_some_and(|f| f.is_whitespace() || f.is_letter() || f.is_number()) {
                pos = at;
                while self.other(pos) {
                    pos += 1;
                }
                while matches!(self.cp(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                self.emit(pos);
                continue;
            }
            // \s*[\r\n]+ takes the whitespace up to the last line break of the run.
            let mut n = 0;
            let mut last_break = None;
            while self.space(pos + n) {
                if matches!(self.cps[pos + n], '\r' | '\n') {
                    last_break = Some(pos + n + 1);
                }
                n += 1;
            }
            if let Some(end) = last_break {
                pos = end;
                self.emit(pos);
                continue;
            }
            if self.trailing_whitespace(&mut pos, n) {
                continue;
            }
            pos += 1;
            self.emit(pos);
        }
    }

    fn newlines(&mut self) {
        let mut pos = self.lo;
        while pos < self.hi {
            let nl = self.cps[pos] == '\n';
            while pos < self.hi && (self.cps[pos] == '\n') == nl {
                pos += 1;
            }
            self.emit(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: &str, text: &str) -> Vec<String> {
        let (p, _) = PreTokenizer::new(pre).unwrap();
        let alphabet = ByteAlphabet::get();
        p.split(text)
            .into_iter()
            .map(|w| {
                if p.byte_encode {
                    let bytes: Vec<u8> = w.chars().map(|c| alphabet.decode(c).unwrap()).collect();
                    String::from_utf8(bytes).unwrap()
                } else {
                    w
                }
            })
            .collect()
    }

    #[test]
    fn gpt2_splits_words_numbers_and_whitespace() {
        assert_eq!(words("gpt-2", "Hello world's  123 !!  "), ["Hello", " world", "'s", " ", " 123", " !!", "  "]);
    }

    #[test]
    fn smollm_isolates_digits_before_gpt2() {
        assert_eq!(words("smollm", "ab 1234x"), ["ab", " ", "1", "2", "3", "4", "x"]);
    }

    #[test]
    fn llama3_groups_digits_by_three_and_keeps_newlines() {
        assert_eq!(
            words("llama-bpe", "I'LL pay 1234567\n\n  ok"),
            ["I", "'LL", " pay", " ", "123", "456", "7", "\n\n", " ", " ok"]
        );
    }

    #[test]
    fn qwen2_isolates_single_digits() {
        assert_eq!(words("qwen2", "x=42;"), ["x", "=", "4", "2", ";"]);
    }

    #[test]
    fn default_pre_splits_punctuation_first() {
        assert_eq!(words("default", "a,b 1234"), ["a", ",", "b", " ", "123", "4"]);
    }

    #[test]
    fn collapsed_expression_uses_stand_ins() {
        let e = collapse_expression(r"[^\s\p{L}]\p{N}");
        assert!(e.starts_with("[^\\s\u{F0D2}\\x{41}"));
        assert!(e.contains("[\u{F0D1}\\x{30}"));
    }

    #[test]
    fn unknown_pre_tokenizer_is_an_error() {
        assert!(matches!(PreTokenizer::new("no-such-pre"), Err(TokenizerError::UnsupportedPreTokenizer(_))));
    }
}
