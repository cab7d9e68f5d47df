//! Go `text/template`, as used by Ollama model templates, over JSON data.
//!
//! Ollama stores each model's prompt template as Go template source; this crate
//! parses and executes that language with Go's observable behaviour (trim
//! markers, `<no value>` for missing keys, `%v` printing, builtin functions) so
//! prompts render byte-for-byte as Ollama renders them. The [`ollama`] module adds
//! Ollama's rules for turning a chat or generate request into template data.

mod ast;
pub mod calendar;
mod error;
mod exec;
mod format;
mod funcs;
mod lexer;
pub mod ollama;
mod parser;
mod printf;
mod template;
mod value;

pub use error::{Position, TemplateError};
pub use funcs::FuncSet;
pub use template::{looks_like_go_template, GoTemplate, MissingKey};
