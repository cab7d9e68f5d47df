//! Tokenizers built from GGUF metadata, producing the same tokens as llama.cpp.
//!
//! Three algorithms cover the supported models:
//! - SentencePiece (`tokenizer.ggml.model = "llama"`, e.g. Gemma): score-driven merges over
//!   `▁`-escaped text with `<0xXX>` byte fallback (module `spm`);
//! - byte-level BPE (`"gpt2"`, e.g. SmolLM, Llama 3, Qwen 2): text is split into words by the
//!   pre-tokenizer named in `tokenizer.ggml.pre` (module
//!   `pretokenize`), then merged by rank (module `bpe`);
//! - WordPiece (`"bert"`, embedding models such as MiniLM): BERT's normalisation and
//!   splitting, then greedy longest match (module `wordpiece`).
//!
//! In both, special tokens are cut out of the text first (module `special`). Matching llama.cpp
//! exactly matters because a model only behaves as trained on the token sequences its reference
//! runtime produces; every quirk reproduced here is documented where it is implemented.

mod bpe;
mod decode;
mod error;
mod gguf;
mod merge;
mod pretokenize;
mod special;
mod spm;
mod unicode;
mod vocab;
mod wordpiece;

pub use decode::{DecodeState, IncrementalDecoder};
pub use error::TokenizerError;
pub use vocab::{token_type, SpecialIds, VocabSpec};

use bpe::{ByteTokens, Merges};
use pretokenize::{PreFlags, PreTokenizer};
use special::{Fragment, SpecialTokens};
use vocab::{attr, Kind, Vocab};

/// A tokenizer for one model's vocabulary. Immutable once built; share it freely.
#[derive(Debug)]
pub struct Tokenizer {
    kind: Kind,
    vocab: Vocab,
    special_ids: SpecialIds,
    eog: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    escape_whitespaces: bool,
    ignore_merges: bool,
    newline_words_whole: bool,
    pre: Option<PreTokenizer>,
    normalizer: wordpiece::Normalizer,
    merges: Merges,
    specials: SpecialTokens,
}

impl Tokenizer {
    /// Builds the tokenizer described by a model file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(file: &kiln_gguf::GgufFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_spec(VocabSpec::from_gguf(file)?)
    }

    /// Builds a tokenizer from metadata values given directly.
    pub fn from_spec(spec: VocabSpec) -> Result<Tokenizer, TokenizerError> {
        let merges = match (&spec.merges, spec.model.as_str()) {
            (Some(lines), "gpt2" | "gemma4") => Merges::new(lines),
            _ => Merges::default(),
        };
        let r = vocab::resolve(spec)?;
        let (pre, flags) = match r.pre {
            Some((p, f)) => (Some(p), f),
            None => (None, PreFlags { clean_spaces: false, ..PreFlags::default() }),
        };
        let specials = SpecialTokens::new(&r.vocab);
        Ok(Tokenizer {
            kind: r.kind,
            vocab: r.vocab,
            special_ids: r.special,
            eog: r.eog,
            add_bos: r.add_bos,
            add_eos: r.add_eos,
            add_space_prefix: r.add_space_prefix,
            clean_spaces: r.clean_spaces,
            escape_whitespaces: flags.escape_whitespaces,
            ignore_merges: flags.ignore_merges,
            newline_words_whole: flags.newline_words_whole,
            pre,
            normalizer: r.normalizer,
            merges,
            specials,
        })
    }

    /// Tokenizes `text` like llama.cpp's `llama_tokenize(text, add_special, parse_special)`.
    ///
    /// `add_special` adds the BOS/EOS tokens the model asks for ([`add_bos`](Self::add_bos),
    /// [`add_eos`](Self::add_eos)). `parse_special` turns the text of control tokens (e.g.
    /// `<|im_start|>`, `<start_of_turn>`) into those tokens; without it such text is tokenized
    /// as plain text. User-defined tokens are always matched.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.special_ids.bos);
        }
        let fragments = self.specials.partition(&self.vocab, text, parse_special);
        match self.kind {
            Kind::Spm => {
                // The space prefix goes before text at the start and after each special token.
                let mut after_special = true;
                let mut buf = String::new();
                for frag in fragments {
                    match frag {
                        Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                        Fragment::Text(lo, hi) => {
                            buf.clear();
                            if self.add_space_prefix && after_special {
                                buf.push('▁');
                            }
                            escape_whitespace(&text[lo..hi], &mut buf);
                            spm::encode(&self.vocab, self.special_ids.unk, &buf, &mut out);
                            after_special = false;
                        }
                    }
                }
            }
            Kind::Bpe => {
                let Some(pre) = &self.pre else { return out };
                let bytes = if pre.byte_encode { ByteTokens::Alphabet } else { ByteTokens::Hex };
                let mut buf = String::new();
                for frag in fragments {
                    match frag {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(lo, hi) => {
                            let mut piece = &text[lo..hi];
                            if self.escape_whitespaces {
                                buf.clear();
                                escape_whitespace(piece, &mut buf);
                                piece = &buf;
                            }
                            for word in pre.split(piece) {
                                let whole = self.ignore_merges
                                    || (self.newline_words_whole && word.bytes().all(|b| b == b'\n'));
                                bpe::encode_word(&self.vocab, &self.merges, &word, whole, bytes, &mut out);
                            }
                        }
                    }
                }
            }
            Kind::WordPiece => {
                for frag in fragments {
                    match frag {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(lo, hi) => wordpiece::encode(
                            &self.vocab,
                            self.special_ids.unk,
                            self.normalizer,
                            &text[lo..hi],
                            &mut out,
                        ),
                    }
                }
                // BERT closes every input with [SEP], not EOS.
                if add_special {
                    out.extend(self.special_ids.sep);
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.special_ids.eos);
        }
        out
    }

    /// The bytes token `id` stands for, as llama.cpp's `llama_token_to_piece` renders them:
    /// byte tokens give their byte, `▁` becomes a space (SentencePiece), byte-level BPE tokens
    /// give their raw bytes, and control/unknown tokens give their text only when `special` is
    /// set (otherwise nothing). Unknown ids give nothing.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Vec<u8> {
        let mut out = Vec::new();
        self.piece_into(id, special, &mut out);
        out
    }

    /// Detokenizes like llama.cpp's `llama_detokenize(remove_special = false, unparse_special =
    /// special)`: the pieces concatenated, minus the leading space of models that add one when
    /// tokenizing, with the vocabulary's space clean-up applied. Invalid UTF-8 (an incomplete
    /// sequence) is replaced only here, at the very end.
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids, special)).into_owned()
    }

    /// A streaming decoder; see [`IncrementalDecoder`].
    pub fn incremental_decoder(&self, special: bool) -> IncrementalDecoder<'_> {
        IncrementalDecoder::new(self, special)
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }
    /// Beginning-of-sequence token.
    pub fn bos(&self) -> Option<u32> {
        self.special_ids.bos
    }
    /// End-of-sequence token.
    pub fn eos(&self) -> Option<u32> {
        self.special_ids.eos
    }
    /// End-of-turn token (from metadata, else detected by its text).
    pub fn eot(&self) -> Option<u32> {
        self.special_ids.eot
    }
    /// All special token ids the vocabulary defines or that were detected.
    pub fn special_ids(&self) -> &SpecialIds {
        &self.special_ids
    }
    /// Whether `encode(.., add_special = true, ..)` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.special_ids.bos.is_some()
    }
    /// Whether `encode(.., add_special = true, ..)` ends with EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos && self.special_ids.eos.is_some()
    }
    /// Whether generation should stop at `id`: EOS, EOT, EOM and the tokens llama.cpp
    /// recognises by text (`<|im_end|>`, `<end_of_turn>`, `<|endoftext|>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }
    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }
    /// The stored text of token `id` (unprocessed: `▁` and byte-level characters intact).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.texts.get(id as usize).map(|s| &**s)
    }
    /// The id of the token whose stored text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id(text)
    }
    /// Whether `id` is a control token (rendered only with `special`, matched in text only
    /// with `parse_special`).
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.has(id, attr::CONTROL)
    }
    /// Whether the vocabulary is SentencePiece (`true`) or byte-level BPE or WordPiece (`false`).
    pub fn is_sentencepiece(&self) -> bool {
        self.kind == Kind::Spm
    }
}

/// Spaces to `▁`, as SentencePiece vocabularies spell them.
fn escape_whitespace(text: &str, out: &mut String) {
    for c in text.chars() {
        out.push(if c == ' ' { '▁' } else { c });
    }
}
