//! Constrained decoding: the answer must match a grammar (a JSON schema, any JSON object, a
//! regular expression or a Lark grammar), enforced token by token with llguidance.
//!
//! A [`GrammarCompiler`] is built once per tokenizer (it indexes every token's bytes); it
//! compiles each request's [`Grammar`] into a [`Constraint`], the per-sequence matcher. Before
//! a token is sampled, the constraint computes which tokens may come next; the sampler gives
//! every other token a logit of `-inf`; the sampled token is then committed. The grammar ends
//! the answer itself when it is complete and nothing but the end may follow.
//!
//! Computing a mask is the slow part (tens of microseconds to a few milliseconds), which is
//! why [`Constraint::prepare`] is separate from [`Constraint::allowed`]: the scheduler runs
//! it for every constrained sequence on a side thread while the batch's forward pass runs.
//! Committing a token is cheap. Tool calls constrained to a function's arguments are one
//! more [`Grammar`] (a Lark grammar embedding the schema), so they reuse all of this.

mod vocab;

use kiln_tokenizer::Tokenizer;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};
use std::fmt::Display;
use std::sync::Arc;
use toktrie::SimpleVob;

/// What the answer must match.
#[derive(Clone, Debug, PartialEq)]
pub enum Grammar {
    /// Any JSON object (Ollama's `format: "json"`, OpenAI's `json_object`).
    JsonObject,
    /// A JSON schema. With `strict`, a keyword the compiler cannot enforce refuses the
    /// schema; without, such keywords are ignored.
    JsonSchema { schema: Value, strict: bool },
    /// A regular expression (Rust `regex` syntax) the whole answer matches.
    Regex(String),
    /// A grammar in llguidance's Lark dialect.
    Lark(String),
    /// Exactly one of these strings.
    Choice(Vec<String>),
}

/// A grammar that cannot be used, or a matcher that failed while decoding.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConstraintError {
    /// The request's grammar does not compile (the client's mistake).
    #[error("invalid grammar: {0}")]
    Invalid(String),
    /// The vocabulary cannot carry a grammar.
    #[error("constrained decoding is not available for this model: {0}")]
    Unsupported(String),
    /// The matcher failed while decoding (a limit reached, a token it did not allow).
    #[error("constrained decoding failed: {0}")]
    Failed(String),
}

impl Grammar {
    /// llguidance's form of the grammar. JSON is generated compact (no optional whitespace):
    /// a small model allowed free whitespace may emit newlines until its budget runs out.
    fn to_llguidance(&self) -> Result<TopLevelGrammar, ConstraintError> {
        let compact = |strict: bool| json!({ "whitespace_flexible": false, "lenient": !strict });
        Ok(match self {
            Grammar::JsonObject => {
                TopLevelGrammar::from_json_schema(json!({ "type": "object", "x-guidance": compact(true) }))
            }
            Grammar::JsonSchema { schema, strict } => {
                let mut schema = schema.clone();
                match &mut schema {
                    Value::Object(obj) => {
                        obj.entry("x-guidance").or_insert_with(|| compact(*strict));
                    }
                    Value::Bool(_) => {}
                    other => return Err(ConstraintError::Invalid(format!("a JSON schema is an object, not {other}"))),
                }
                TopLevelGrammar::from_json_schema(schema)
            }
            Grammar::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Grammar::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
            Grammar::Choice(choices) => {
                if choices.is_empty() {
                    return Err(ConstraintError::Invalid("a choice needs at least one string".into()));
                }
                // Lark string literals are JSON strings, so JSON quoting escapes them.
                let alternatives: Vec<String> = choices.iter().map(|c| Value::from(c.as_str()).to_string()).collect();
                TopLevelGrammar::from_lark(format!("start: {}", alternatives.join(" | ")))
            }
        })
    }
}

/// Compiles grammars against one tokenizer's vocabulary.
pub struct GrammarCompiler {
    factory: ParserFactory,
}

impl GrammarCompiler {
    pub fn new(tokenizer: Arc<Tokenizer>) -> Result<GrammarCompiler, ConstraintError> {
        let env = vocab::TokenBytes::new(tokenizer)
            .ok_or_else(|| ConstraintError::Unsupported("the vocabulary has no end-of-generation token".into()))?;
        let mut factory = ParserFactory::new_simple(&(Arc::new(env) as toktrie::TokEnv)).map_err(unsupported)?;
        // Problems are reported as values; nothing goes to stderr.
        factory.quiet();
        Ok(GrammarCompiler { factory })
    }

    /// A fresh matcher for one sequence, at the start of its answer.
    pub fn compile(&self, grammar: &Grammar) -> Result<Constraint, ConstraintError> {
        let parser = self.factory.create_parser(grammar.to_llguidance()?).map_err(invalid)?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(ConstraintError::Invalid(e));
        }
        Ok(Constraint { matcher, mask: None })
    }
}

fn unsupported(e: impl Display) -> ConstraintError {
    ConstraintError::Unsupported(e.to_string())
}

fn invalid(e: impl Display) -> ConstraintError {
    ConstraintError::Invalid(e.to_string())
}

fn failed(e: impl Display) -> ConstraintError {
    ConstraintError::Failed(e.to_string())
}

/// One sequence's position in its grammar.
pub struct Constraint {
    matcher: Matcher,
    /// The tokens allowed next, once computed for the current position.
    mask: Option<SimpleVob>,
}

impl Constraint {
    /// Computes the tokens allowed next, unless already known. This is the expensive step,
    /// safe to run on another thread; a failure is kept by the matcher and reported by
    /// [`Constraint::allowed`].
    pub fn prepare(&mut self) {
        if self.mask.is_none() {
            self.mask = self.matcher.compute_mask_or_eos().ok();
        }
    }

    /// The tokens allowed next, as bits (`id % 32` of word `id / 32`); ids past the end are
    /// not allowed. Once the grammar is complete, only end-of-generation tokens are.
    pub fn allowed(&mut self) -> Result<&[u32], ConstraintError> {
        self.prepare();
        match &self.mask {
            Some(mask) => Ok(mask.as_slice()),
            None => Err(ConstraintError::Failed(self.matcher.get_error().unwrap_or_else(|| "no mask".into()))),
        }
    }

    /// Advances past `token`, which must be one [`Constraint::allowed`] allows.
    pub fn commit(&mut self, token: u32) -> Result<(), ConstraintError> {
        self.mask = None;
        self.matcher.consume_token(token).map_err(failed)
    }

    /// Whether the grammar is complete and nothing but the end may follow: the answer is over.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }
}

#[cfg(test)]
mod tests;
