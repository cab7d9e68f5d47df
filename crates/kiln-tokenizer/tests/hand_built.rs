//! Public-API behaviour on small hand-built vocabularies (no model files needed).

use kiln_tokenizer::{token_type, Tokenizer, TokenizerError, VocabSpec};

/// SentencePiece vocabulary: `<unk> <s> </s> <start_of_turn>`, 256 byte tokens, then pieces.
fn spm() -> Tokenizer {
    let mut tokens: Vec<(String, f32, i32)> = vec![
        ("<unk>".into(), 0.0, token_type::UNKNOWN),
        ("<s>".into(), 0.0, token_type::CONTROL),
        ("</s>".into(), 0.0, token_type::CONTROL),
        ("<start_of_turn>".into(), 0.0, token_type::CONTROL),
    ];
    for b in 0..=255u8 {
        tokens.push((format!("<0x{b:02X}>"), 0.0, token_type::BYTE));
    }
    for (piece, score) in [
        ("▁", -1.0),
        ("h", -2.0),
        ("i", -2.0),
        ("▁h", -3.0),
        ("▁hi", -1.5),
        ("u", -2.0),
        ("s", -2.0),
        ("e", -2.0),
        ("r", -2.0),
        ("us", -2.5),
        ("er", -2.5),
        ("user", -1.0),
        ("use", -2.2),
    ] {
        tokens.push((piece.into(), score, token_type::NORMAL));
    }
    Tokenizer::from_spec(VocabSpec {
        model: "llama".into(),
        tokens: tokens.iter().map(|t| t.0.clone()).collect(),
        scores: Some(tokens.iter().map(|t| t.1).collect()),
        token_types: Some(tokens.iter().map(|t| t.2).collect()),
        ..Default::default()
    })
    .unwrap()
}

/// Byte-level BPE vocabulary: the 256 alphabet characters, then merged tokens and specials.
fn bpe() -> Tokenizer {
    let mut alphabet: Vec<char> = Vec::new();
    let mut extra = 0x100u32;
    for b in 0..=255u32 {
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        alphabet.push(
            char::from_u32(if printable {
                b
            } else {
                extra += 1;
                extra - 1
            })
            .unwrap(),
        );
    }
    let mut tokens: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
    let merged = ["he", "ll", "hell", "hello", "Ġw", "or", "Ġwor", "ld", "Ġworld"];
    tokens.extend(merged.iter().map(|s| s.to_string()));
    tokens.extend(["<|im_start|>", "<|im_end|>"].map(String::from));
    let n = tokens.len();
    let mut types = vec![token_type::NORMAL; n];
    types[n - 2] = token_type::CONTROL;
    types[n - 1] = token_type::CONTROL;
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"];
    Tokenizer::from_spec(VocabSpec {
        model: "gpt2".into(),
        pre: Some("gpt-2".into()),
        tokens,
        token_types: Some(types),
        merges: Some(merges.map(String::from).to_vec()),
        special: kiln_tokenizer::SpecialIds { bos: Some(n as u32 - 2), eos: Some(n as u32 - 1), ..Default::default() },
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn spm_prefixes_a_space_and_merges_by_score() {
    let t = spm();
    let user = t.token_id("user").unwrap();
    let hi = t.token_id("▁hi").unwrap();
    // BOS, then "▁hi" (the space prefix joins the first word), then "user" beats "use"+"r".
    assert_eq!(t.encode("hiuser", true, false), [1, hi, user]);
    // Like llama.cpp, decode drops the added space only from the very first token, so a leading
    // BOS keeps it.
    assert_eq!(t.decode(&t.encode("hiuser", false, false), false), "hiuser");
    assert_eq!(t.decode(&t.encode("hiuser", true, false), false), " hiuser");
}

#[test]
fn spm_special_tokens_need_parse_special() {
    let t = spm();
    let with = t.encode("<start_of_turn>user", false, true);
    assert_eq!(with, [3, t.token_id("▁").unwrap(), t.token_id("user").unwrap()]);
    let without = t.encode("<start_of_turn>", false, false);
    assert!(without.len() > 1 && !without.contains(&3));
    assert!(t.token_to_piece(3, false).is_empty());
    assert_eq!(t.token_to_piece(3, true), b"<start_of_turn>");
}

#[test]
fn spm_byte_fallback_and_streaming() {
    let t = spm();
    let ids = t.encode("😀", false, false);
    // "▁" then the four UTF-8 bytes of the emoji as <0xXX> tokens.
    assert_eq!(ids.len(), 5);
    assert_eq!(t.token_to_piece(ids[1], false), [0xF0]);
    let mut dec = t.incremental_decoder(false);
    let outs: Vec<String> = ids.iter().map(|&id| dec.push(id)).collect();
    assert_eq!(outs, [" ", "", "", "", "😀"]);
    assert_eq!(dec.finish(), "");
    // decode drops the space the tokenizer added.
    assert_eq!(t.decode(&ids, false), "😀");
}

#[test]
fn bpe_merges_and_decodes() {
    let t = bpe();
    let ids = t.encode("hello world", false, false);
    assert_eq!(ids, [t.token_id("hello").unwrap(), t.token_id("Ġworld").unwrap()]);
    assert_eq!(t.token_to_piece(ids[1], false), b" world");
    assert_eq!(t.decode(&ids, false), "hello world");
    // gpt-2 vocabularies clean up spaces before punctuation when decoding.
    assert_eq!(t.decode(&t.encode("hello , world", false, false), false), "hello, world");
}

#[test]
fn bpe_control_tokens_and_end_of_generation() {
    let t = bpe();
    let start = t.token_id("<|im_start|>").unwrap();
    let end = t.token_id("<|im_end|>").unwrap();
    assert_eq!(t.encode("<|im_start|>hello<|im_end|>", false, true), [start, t.token_id("hello").unwrap(), end]);
    assert!(!t.encode("<|im_start|>", false, false).contains(&start));
    assert!(t.is_eog(end));
    assert!(!t.is_eog(start));
    assert!(t.is_control(start));
    assert_eq!(t.decode(&[start, end], false), "");
    assert_eq!(t.decode(&[start, end], true), "<|im_start|><|im_end|>");
}

#[test]
fn add_special_follows_metadata() {
    let t = bpe();
    assert!(!t.add_bos());
    assert_eq!(t.encode("hello", true, false), [t.token_id("hello").unwrap()]);
    let t = spm();
    assert!(t.add_bos() && !t.add_eos());
    assert_eq!(t.encode("", true, false), [1]);
    assert_eq!(t.encode("", false, false), Vec::<u32>::new());
}

#[test]
fn errors_name_the_metadata_at_fault() {
    let base = VocabSpec { model: "gpt2".into(), tokens: vec!["a".into()], ..Default::default() };
    let e = Tokenizer::from_spec(base.clone()).unwrap_err();
    assert!(matches!(e, TokenizerError::MissingKey("tokenizer.ggml.merges")));
    assert!(e.to_string().contains("tokenizer.ggml.merges"));

    let e = Tokenizer::from_spec(VocabSpec { model: "rwkv".into(), ..base.clone() }).unwrap_err();
    assert!(e.to_string().contains("rwkv"));

    let e = Tokenizer::from_spec(VocabSpec { pre: Some("mystery".into()), merges: Some(vec![]), ..base.clone() })
        .unwrap_err();
    assert!(e.to_string().contains("mystery") && e.to_string().contains("tokenizer.ggml.pre"));

    let e = Tokenizer::from_spec(VocabSpec {
        model: "llama".into(),
        tokens: vec!["a".into(), "b".into()],
        scores: Some(vec![0.0]),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("tokenizer.ggml.scores"));
}

#[test]
fn tokenizer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
}

/// WordPiece vocabulary in llama.cpp's layout: word-initial pieces with `▁`, continuations bare.
fn wordpiece() -> Tokenizer {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    let pieces = ["▁un", "▁unbeliev", "able", "ably", "▁a", "a", "▁,", "▁!"];
    let tokens: Vec<String> = specials.iter().chain(&pieces).map(|s| s.to_string()).collect();
    let types = specials.map(|_| token_type::CONTROL).into_iter().chain(pieces.map(|_| token_type::NORMAL)).collect();
    Tokenizer::from_spec(VocabSpec {
        model: "bert".into(),
        tokens,
        token_types: Some(types),
        special: kiln_tokenizer::SpecialIds { bos: Some(2), unk: Some(1), sep: Some(3), ..Default::default() },
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn wordpiece_matches_longest_pieces_and_gives_unknown_words_unk() {
    let t = wordpiece();
    // [CLS] unbeliev ably , a ! [SEP]: the longest word-initial piece first, then continuations.
    assert_eq!(t.encode("Unbelievably, A!", true, false), [2, 5, 7, 10, 8, 11, 3]);
    // A word with no complete match is one [UNK]; so is a word over 100 characters.
    assert_eq!(t.encode("unx a", false, false), [1, 8]);
    assert_eq!(t.encode(&"a".repeat(100), false, false), [vec![8], vec![9; 99]].concat());
    assert_eq!(t.encode(&"a".repeat(101), false, false), [1]);
    // Special-token text is a token only when special tokens are parsed.
    assert_eq!(t.encode("[SEP]", false, true), [3]);
    assert_eq!(t.encode("", true, false), [2, 3]);
}
