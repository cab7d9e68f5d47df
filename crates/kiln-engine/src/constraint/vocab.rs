//! Kiln's tokenizer as llguidance sees it: every token's bytes in a trie, the
//! end-of-generation tokens as its EOS set, and Kiln's own tokenizer for text it must split.

use kiln_tokenizer::Tokenizer;
use std::sync::Arc;
use toktrie::{TokRxInfo, TokTrie, TokenId, TokenizerEnv};

/// The vocabulary a grammar is matched against.
pub(crate) struct TokenBytes {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenBytes {
    /// `None` when the vocabulary has no end-of-generation token: a grammar could then never
    /// let the answer end.
    pub(crate) fn new(tokenizer: Arc<Tokenizer>) -> Option<TokenBytes> {
        let eog = tokenizer.eog_ids().to_vec();
        let eos = tokenizer.eos().filter(|&t| tokenizer.is_eog(t)).or_else(|| eog.first().copied())?;
        let words: Vec<Vec<u8>> = (0..tokenizer.n_vocab() as u32).map(|id| token_bytes(&tokenizer, id)).collect();
        let info = TokRxInfo::new(words.len() as u32, eos);
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eog);
        Some(TokenBytes { trie, tokenizer })
    }
}

/// What a token contributes to the output. Control and end-of-generation tokens are marked
/// special (a leading 0xFF, which no UTF-8 text contains), so no grammar over text can
/// produce them; the end of the answer is allowed through the trie's EOS set instead.
fn token_bytes(tok: &Tokenizer, id: u32) -> Vec<u8> {
    let piece = tok.token_to_piece(id, false);
    if tok.is_control(id) || tok.is_eog(id) || piece.is_empty() {
        let mut special = vec![TokTrie::SPECIAL_TOKEN_MARKER];
        special.extend_from_slice(tok.token_text(id).unwrap_or_default().as_bytes());
        return special;
    }
    piece
}

impl TokenizerEnv for TokenBytes {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// SentencePiece's encoder adds a leading space to every text it is given, so a fragment
    /// of an answer would come out wrong: such vocabularies split greedily over the trie.
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        if self.tokenizer.is_sentencepiece() {
            return self.trie.greedy_tokenize(s);
        }
        self.trie.tokenize_with_greedy_fallback(s, |text| self.tokenizer.encode(text, false, false))
    }

    fn tokenize_is_canonical(&self) -> bool {
        !self.tokenizer.is_sentencepiece()
    }
}
