//! A reader and a writer for GGUF, the model file format of llama.cpp and ggml.
//!
//! [`GgufFile::open`] memory-maps a file and parses its header: the metadata key/value pairs
//! and the tensor descriptors. Tensor data stays in the map and is handed out as byte slices
//! by [`GgufFile::tensor_data`].
//!
//! Model files come from the internet, so the parser treats every byte as hostile: all
//! reads are bounds-checked, all arithmetic on file-supplied numbers is checked, every count
//! is compared with the bytes that remain before anything is allocated for it, and array
//! nesting is capped. A bad file yields a [`GgufError`] that names the entry and byte offset
//! at fault, never a panic or an out-of-memory abort.
//!
//! Supported: GGUF versions 2 and 3, little-endian. [`GgufWriter`] writes version 3, streaming
//! tensor data one tensor at a time.

mod error;
mod file;
mod ggml_type;
mod metadata;
mod reader;
mod tensor;
mod value;
mod writer;

pub use error::GgufError;
pub use file::{GgufFile, ALIGNMENT_KEY, DEFAULT_ALIGNMENT};
pub use ggml_type::GgmlType;
pub use metadata::MAX_ARRAY_DEPTH;
pub use tensor::{TensorInfo, MAX_DIMS};
pub use value::{Array, Value};
pub use writer::{GgufWriter, TensorSpec};
