//! Embeddings: text (or token ids) in, one vector per input out, through an encoder model.
//!
//! Each input is tokenized with BERT's `[CLS] … [SEP]` framing, cut to the context when
//! `truncate` allows it (else refused), and the inputs run through the encoder together, a
//! bounded number of tokens per pass.

use kiln_gguf::GgufFile;
use kiln_kernels::ThreadPool;
use kiln_models::{Encoder, ModelError};
use kiln_tokenizer::{Tokenizer, TokenizerError};
use std::sync::Arc;

/// Most tokens in one encoder pass: several inputs share a pass (each weight is read once for
/// all of them) while the activations stay a few tens of MB.
const PASS_TOKENS: usize = 4096;

/// One input to embed.
#[derive(Clone, Debug, PartialEq)]
pub enum EmbedInput {
    Text(String),
    /// Token ids without the special tokens, which are added as for text.
    Tokens(Vec<u32>),
}

/// How to embed a batch of inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmbedOptions {
    /// Cut inputs longer than the context to it (`false`: such an input is an error).
    pub truncate: bool,
    /// The context, in tokens; the model's trained context when larger or `None`.
    pub num_ctx: Option<usize>,
    /// Scale each vector to unit length.
    pub normalize: bool,
    /// Keep only the first this many dimensions (renormalised when `normalize`).
    pub dimensions: Option<usize>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions { truncate: true, num_ctx: None, normalize: true, dimensions: None }
    }
}

/// The vectors of a batch, in input order, and the tokens they took.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// All tokens of all inputs after truncation, special tokens included.
    pub prompt_tokens: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "input {index} has {n_tokens} tokens, more than the context length of {limit}; shorten it or allow truncation"
    )]
    InputTooLong { index: usize, n_tokens: usize, limit: usize },
    #[error("dimensions must be between 1 and the model's {n_embd}, not {requested}")]
    BadDimensions { requested: usize, n_embd: usize },
    #[error("input {index} has token id {id}, outside the vocabulary of {n_vocab}")]
    BadToken { index: usize, id: u32, n_vocab: usize },
    #[error("the embedding of input {0} is not finite")]
    NotFinite(usize),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("reading the tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
}

/// An encoder model with its tokenizer and threads.
pub struct Embedder {
    encoder: Encoder,
    tokenizer: Tokenizer,
    pool: ThreadPool,
}

impl Embedder {
    /// Builds an embedder over an open file holding an encoder model.
    pub fn from_file(file: Arc<GgufFile>, n_threads: usize) -> Result<Embedder, EmbedError> {
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let encoder = Encoder::from_file(file)?;
        Ok(Embedder { encoder, tokenizer, pool: ThreadPool::new(n_threads) })
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Width of the vectors.
    pub fn n_embd(&self) -> usize {
        self.encoder.config().n_embd
    }

    /// The vectors of `inputs`, in order.
    pub fn embed(&self, inputs: &[EmbedInput], opts: &EmbedOptions) -> Result<Embeddings, EmbedError> {
        let n_embd = self.n_embd();
        if let Some(d) = opts.dimensions.filter(|&d| d == 0 || d > n_embd) {
            return Err(EmbedError::BadDimensions { requested: d, n_embd });
        }
        let trained = self.encoder.config().context_length;
        let limit = opts.num_ctx.map_or(trained, |n| n.min(trained)).max(2);
        let mut tokens = Vec::with_capacity(inputs.len());
        let n_vocab = self.encoder.vocab_size();
        for (index, input) in inputs.iter().enumerate() {
            let ids = self.tokens(input);
            if let Some(&id) = ids.iter().find(|&&id| id as usize >= n_vocab) {
                return Err(EmbedError::BadToken { index, id, n_vocab });
            }
            tokens.push(if ids.len() <= limit {
                ids
            } else if opts.truncate {
                truncated(ids, limit)
            } else {
                return Err(EmbedError::InputTooLong { index, n_tokens: ids.len(), limit });
            });
        }
        let mut vectors = Vec::with_capacity(inputs.len());
        let mut start = 0;
        while start < tokens.len() {
            let mut end = start + 1;
            let mut n = tokens[start].len();
            while end < tokens.len() && n + tokens[end].len() <= PASS_TOKENS {
                n += tokens[end].len();
                end += 1;
            }
            let pass: Vec<&[u32]> = tokens[start..end].iter().map(Vec::as_slice).collect();
            vectors.extend(self.encoder.embed(&self.pool, &pass)?);
            start = end;
        }
        for (i, v) in vectors.iter_mut().enumerate() {
            if !v.iter().all(|x| x.is_finite()) {
                return Err(EmbedError::NotFinite(i));
            }
            if let Some(d) = opts.dimensions {
                v.truncate(d);
            }
            if opts.normalize {
                l2_normalize(v);
            }
        }
        Ok(Embeddings { vectors, prompt_tokens: tokens.iter().map(Vec::len).sum() })
    }

    /// An input's tokens with `[CLS]` and `[SEP]`; the text of special tokens is parsed, as
    /// Hugging Face's tokenizer does.
    fn tokens(&self, input: &EmbedInput) -> Vec<u32> {
        match input {
            EmbedInput::Text(text) => self.tokenizer.encode(text, true, true),
            EmbedInput::Tokens(ids) => {
                let mut out = self.tokenizer.encode("", true, false);
                // [CLS] [SEP] for an empty text: the ids go between them.
                let close = out.pop();
                out.extend_from_slice(ids);
                out.extend(close);
                out
            }
        }
    }
}

/// The first `limit` tokens, ending with the input's own last token (BERT's `[SEP]`), as a
/// tokenizer truncating to `limit` produces them.
fn truncated(mut ids: Vec<u32>, limit: usize) -> Vec<u32> {
    let last = ids[ids.len() - 1];
    ids.truncate(limit - 1);
    ids.push(last);
    ids
}

/// Scales `v` to unit Euclidean length (a zero vector stays zero), as Ollama does.
pub fn l2_normalize(v: &mut [f32]) {
    let sum: f32 = v.iter().map(|x| x * x).sum();
    let scale = 1.0 / sum.sqrt().max(1e-12);
    for x in v.iter_mut() {
        *x *= scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_the_closing_token() {
        assert_eq!(truncated(vec![101, 5, 6, 7, 8, 102], 4), [101, 5, 6, 102]);
    }

    #[test]
    fn normalisation_gives_unit_length_and_leaves_zero_alone() {
        let mut v = [3.0f32, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut z = [0.0f32; 3];
        l2_normalize(&mut z);
        assert_eq!(z, [0.0; 3]);
    }
}
