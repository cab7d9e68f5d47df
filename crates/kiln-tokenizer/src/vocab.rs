//! The vocabulary: token texts, scores and attributes, the special token ids, and the flags that
//! decide how text is tokenized — resolved from metadata with llama.cpp's defaults and its
//! text-based detection of end-of-generation and other special tokens.

use std::collections::HashMap;

use crate::error::TokenizerError;
use crate::pretokenize::{PreFlags, PreTokenizer};

/// Token attribute bits (a token can carry several, e.g. a detected end-of-turn token that the
/// file marked user-defined becomes user-defined *and* control).
pub(crate) mod attr {
    pub const NORMAL: u16 = 1 << 0;
    pub const UNKNOWN: u16 = 1 << 1;
    pub const CONTROL: u16 = 1 << 2;
    pub const USER_DEFINED: u16 = 1 << 3;
    pub const UNUSED: u16 = 1 << 4;
    pub const BYTE: u16 = 1 << 5;
    /// Whitespace left of the token is swallowed when it is matched in text.
    pub const LSTRIP: u16 = 1 << 6;
    /// Whitespace right of the token is swallowed when it is matched in text.
    pub const RSTRIP: u16 = 1 << 7;
}

/// Values of `tokenizer.ggml.token_type`.
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// Special token ids as stored in metadata (`None`: key absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// Everything a tokenizer is built from: the `tokenizer.ggml.*` metadata as plain values, so
/// tokenizers can be built without a GGUF file (tests, other containers).
#[derive(Debug, Clone, Default)]
pub struct VocabSpec {
    /// `tokenizer.ggml.model`: `llama` (SentencePiece), `gpt2` (byte-level BPE), `gemma4` or
    /// `bert` (WordPiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: the BPE pre-tokenizer name (ignored for SentencePiece).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (SentencePiece merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`, see [`token_type`].
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges`, `"left right"` in priority order (BPE only).
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.*_token_id`
    pub special: SpecialIds,
    /// `tokenizer.ggml.add_bos_token`
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`
    pub add_space_prefix: Option<bool>,
    /// `general.name`: a few model families get per-token strip rules by name.
    pub name: Option<String>,
    /// `general.architecture`
    pub architecture: Option<String>,
    /// `tokenizer.ggml.normalizer.lowercase` (WordPiece only; absent: lowercase).
    pub lowercase: Option<bool>,
    /// `tokenizer.ggml.normalizer.strip_accents` (WordPiece only; absent: as `lowercase`).
    pub strip_accents: Option<bool>,
}

/// Which merge algorithm the vocabulary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// SentencePiece: merges by token score, byte fallback.
    Spm,
    /// BPE: merges by rank from `tokenizer.ggml.merges`.
    Bpe,
    /// WordPiece (BERT): greedy longest match over normalised words.
    WordPiece,
}

/// Token storage with O(1) lookups both ways.
#[derive(Debug)]
pub(crate) struct Vocab {
    pub(crate) texts: Vec<Box<str>>,
    pub(crate) scores: Vec<f32>,
    pub(crate) attrs: Vec<u16>,
    to_id: HashMap<Box<str>, u32>,
}

impl Vocab {
    pub(crate) fn len(&self) -> usize {
        self.texts.len()
    }
    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.to_id.get(text).copied()
    }
    pub(crate) fn attr(&self, id: u32) -> u16 {
        self.attrs.get(id as usize).copied().unwrap_or(0)
    }
    pub(crate) fn has(&self, id: u32, bits: u16) -> bool {
        self.attr(id) & bits != 0
    }
}

/// A resolved vocabulary plus the behaviour flags llama.cpp derives for it.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) kind: Kind,
    pub(crate) vocab: Vocab,
    pub(crate) special: SpecialIds,
    pub(crate) eog: Vec<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    pub(crate) add_space_prefix: bool,
    pub(crate) clean_spaces: bool,
    pub(crate) pre: Option<(PreTokenizer, PreFlags)>,
    pub(crate) normalizer: crate::wordpiece::Normalizer,
}

/// Token texts that mark end of turn, in the order llama.cpp looks for them.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Token texts that end generation whatever their role in the metadata.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
];

/// Resolves a spec the way llama.cpp's vocabulary loader does.
pub(crate) fn resolve(spec: VocabSpec) -> Result<Resolved, TokenizerError> {
    let n = spec.tokens.len();
    if n == 0 {
        return Err(TokenizerError::EmptyVocab);
    }
    let check_len = |key: &'static str, found: usize| {
        if found < n {
            Err(TokenizerError::LengthMismatch { key, expected: n, found })
        } else {
            Ok(())
        }
    };
    if let Some(s) = &spec.scores {
        check_len("tokenizer.ggml.scores", s.len())?;
    }
    if let Some(t) = &spec.token_types {
        check_len("tokenizer.ggml.token_type", t.len())?;
    }

    // Model-dependent defaults.
    let mut sp = SpecialIds::default();
    let kind;
    let mut add_bos;
    let mut add_eos = false;
    let mut add_space_prefix;
    let clean_spaces;
    let mut pre = None;
    let mut force_bos = false;
    match spec.model.as_str() {
        "llama" => {
            kind = Kind::Spm;
            sp.bos = Some(1);
            sp.eos = Some(2);
            sp.unk = Some(0);
            add_bos = true;
            add_space_prefix = true;
            clean_spaces = false;
        }
        "gpt2" | "gemma4" => {
            kind = Kind::Bpe;
            if spec.merges.is_none() {
                return Err(TokenizerError::MissingKey("tokenizer.ggml.merges"));
            }
            let name = if spec.model == "gemma4" { "gemma4" } else { spec.pre.as_deref().unwrap_or("default") };
            if spec.model == "gpt2" {
                sp.bos = Some(11);
                sp.eos = Some(11);
            }
            let (p, flags) = PreTokenizer::new(name)?;
            if flags.no_bos {
                sp.bos = None;
            }
            add_bos = flags.add_bos;
            add_space_prefix = false;
            clean_spaces = flags.clean_spaces;
            // Gemma 4 style vocabularies always start with BOS, whatever the metadata says.
            force_bos = name == "gemma4" || name == "granite-embed-multi-311m";
            pre = Some((p, flags));
        }
        "bert" => {
            kind = Kind::WordPiece;
            sp.bos = Some(101);
            sp.unk = Some(100);
            sp.sep = Some(102);
            sp.pad = Some(0);
            sp.mask = Some(103);
            add_bos = true;
            add_space_prefix = false;
            clean_spaces = true;
        }
        other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
    }
    if let Some(v) = spec.add_space_prefix {
        add_space_prefix = v;
    }

    // Token table. Empty texts get a unique placeholder; with duplicate texts the last id wins
    // the text-to-id lookup.
    let mut texts = Vec::with_capacity(n);
    let mut to_id = HashMap::with_capacity(n);
    let mut attrs = Vec::with_capacity(n);
    for (i, word) in spec.tokens.into_iter().enumerate() {
        let word: Box<str> = if word.is_empty() { format!("[EMPTY_{i}]").into() } else { word.into() };
        to_id.insert(word.clone(), i as u32);
        texts.push(word);
        attrs.push(match spec.token_types.as_ref().map(|t| t[i]) {
            None | Some(token_type::NORMAL) => attr::NORMAL,
            Some(token_type::UNKNOWN) => attr::UNKNOWN,
            Some(token_type::CONTROL) => attr::CONTROL,
            Some(token_type::USER_DEFINED) => attr::USER_DEFINED,
            Some(token_type::UNUSED) => attr::UNUSED,
            Some(token_type::BYTE) => attr::BYTE,
            Some(_) => 0,
        });
    }
    let scores = match spec.scores {
        Some(mut s) => {
            s.truncate(n);
            s
        }
        None => vec![0.0; n],
    };
    let mut vocab = Vocab { texts, scores, attrs, to_id };

    // Metadata ids override the defaults; out-of-range values are ignored.
    let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
    let fields: [(&mut Option<u32>, Option<u32>); 14] = [
        (&mut sp.bos, spec.special.bos),
        (&mut sp.eos, spec.special.eos),
        (&mut sp.eot, spec.special.eot),
        (&mut sp.eom, spec.special.eom),
        (&mut sp.unk, spec.special.unk),
        (&mut sp.sep, spec.special.sep),
        (&mut sp.pad, spec.special.pad),
        (&mut sp.mask, spec.special.mask),
        (&mut sp.fim_pre, spec.special.fim_pre),
        (&mut sp.fim_suf, spec.special.fim_suf),
        (&mut sp.fim_mid, spec.special.fim_mid),
        (&mut sp.fim_pad, spec.special.fim_pad),
        (&mut sp.fim_rep, spec.special.fim_rep),
        (&mut sp.fim_sep, spec.special.fim_sep),
    ];
    for (slot, from_file) in fields {
        *slot = in_range(*slot);
        if let Some(id) = in_range(from_file) {
            *slot = Some(id);
        }
    }
    if let Some(v) = spec.add_bos {
        add_bos = v;
    }
    if let Some(v) = spec.add_eos {
        add_eos = v;
    }
    if force_bos {
        add_bos = true;
    }
    if kind == Kind::WordPiece {
        // BERT input is always [CLS] text [SEP]: llama.cpp ignores add_bos/add_eos here (the
        // converter writes add_eos = true with EOS = [SEP], which would add it twice).
        add_bos = true;
        add_eos = false;
    }
    let lowercase = spec.lowercase.unwrap_or(true);
    let normalizer = crate::wordpiece::Normalizer { lowercase, strip_accents: spec.strip_accents.unwrap_or(lowercase) };

    // Detect special tokens by their text where the metadata does not name them, and make sure
    // they are control tokens. llama.cpp walks its hash map here, so when a vocabulary holds
    // several candidates for one role the one it picks is unspecified; lowest id is used here.
    let detect = |slot: &mut Option<u32>, texts: &[&str], vocab: &mut Vocab| {
        if slot.is_some() {
            return;
        }
        let found = texts.iter().filter_map(|t| vocab.id(t)).min();
        if let Some(id) = found {
            *slot = Some(id);
            vocab.attrs[id as usize] |= attr::CONTROL;
        }
    };
    detect(&mut sp.eot, EOT_TEXTS, &mut vocab);
    detect(&mut sp.eom, EOM_TEXTS, &mut vocab);
    detect(&mut sp.fim_pre, FIM_PRE_TEXTS, &mut vocab);
    detect(&mut sp.fim_suf, FIM_SUF_TEXTS, &mut vocab);
    detect(&mut sp.fim_mid, FIM_MID_TEXTS, &mut vocab);
    detect(&mut sp.fim_pad, FIM_PAD_TEXTS, &mut vocab);
    detect(&mut sp.fim_rep, FIM_REP_TEXTS, &mut vocab);
    detect(&mut sp.fim_sep, FIM_SEP_TEXTS, &mut vocab);

    // Control tokens named "unused" are unused.
    for (text, a) in vocab.texts.iter().zip(vocab.attrs.iter_mut()) {
        if *a & attr::CONTROL != 0 && text.contains("unused") {
            *a |= attr::UNUSED;
        }
    }

    // End-of-generation set.
    let mut eog: Vec<u32> = [sp.fim_pad, sp.fim_rep, sp.fim_sep].into_iter().flatten().collect();
    for text in EOG_TEXTS {
        if let Some(id) = vocab.id(text) {
            eog.push(id);
            vocab.attrs[id as usize] |= attr::CONTROL;
        }
    }
    for text in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(id) = vocab.id(text) {
            vocab.attrs[id as usize] = attr::USER_DEFINED;
        }
    }
    eog.extend([sp.eos, sp.eot, sp.eom].into_iter().flatten());
    eog.sort_unstable();
    eog.dedup();
    let eog_text =
        |vocab: &Vocab, eog: &[u32], t: &str| eog.iter().copied().find(|&id| &*vocab.texts[id as usize] == t);
    // Harmony-style vocabularies end a turn with <|return|>/<|call|>; <|end|> only ends a message.
    let has = |vocab: &Vocab, eog: &[u32], t: &str| eog_text(vocab, eog, t).is_some();
    if let Some(end) = eog_text(&vocab, &eog, "<|end|>") {
        let harmony =
            has(&vocab, &eog, "<|return|>") && (has(&vocab, &eog, "<|call|>") || has(&vocab, &eog, "<|calls|>"));
        let solar = has(&vocab, &eog, "<|flush|>") && (has(&vocab, &eog, "<|call|>") || has(&vocab, &eog, "<|calls|>"));
        if harmony || solar {
            eog.retain(|&id| id != end);
            vocab.attrs[end as usize] = attr::USER_DEFINED;
        }
    }
    // Where </s> is an ordinary token (Gemma 4, PLaMo), it does not end generation.
    if let Some(s) = eog_text(&vocab, &eog, "</s>") {
        if has(&vocab, &eog, "<|tool_response>") || has(&vocab, &eog, "<|plamo:eos|>") {
            eog.retain(|&id| id != s);
            vocab.attrs[s as usize] = attr::NORMAL;
        }
    }

    apply_strip_rules(&mut vocab, spec.name.as_deref(), spec.pre.as_deref(), spec.architecture.as_deref());

    Ok(Resolved { kind, vocab, special: sp, eog, add_bos, add_eos, add_space_prefix, clean_spaces, pre, normalizer })
}

/// Per-model whitespace stripping around special tokens, keyed by model name as llama.cpp does
/// (the attributes are not stored in GGUF).
fn apply_strip_rules(vocab: &mut Vocab, name: Option<&str>, pre: Option<&str>, arch: Option<&str>) {
    let name = name.unwrap_or("").to_ascii_lowercase();
    let pre = pre.unwrap_or("");
    let arch = arch.unwrap_or("");
    let set = |vocab: &mut Vocab, text: &str, bit: u16, on: bool| {
        if let Some(id) = vocab.id(text) {
            let a = &mut vocab.attrs[id as usize];
            *a = if on { *a | bit } else { *a & !bit };
        }
    };
    if ["jina-v2-de", "jina-v2-es", "jina-v2-code"].iter().any(|p| pre.contains(p))
        || ["nomic-bert-moe", "jina-bert-v3"].iter().any(|a| arch.contains(a))
    {
        set(vocab, "<mask>", attr::LSTRIP, true);
    } else if name.contains("phi-3") || name.contains("phi3") {
        const SPECIAL: u16 = attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN;
        for a in vocab.attrs.iter_mut().filter(|a| **a & SPECIAL != 0) {
            *a |= attr::RSTRIP;
        }
        set(vocab, "</s>", attr::RSTRIP, true);
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            set(vocab, t, attr::RSTRIP, false);
        }
    } else if name.contains("modern-bert") {
        set(vocab, "[MASK]", attr::LSTRIP, true);
    }
}
