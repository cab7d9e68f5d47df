//! The errors a GGUF file can produce.
//!
//! Every variant that comes from the file's contents says *where* the problem is: a
//! `location` such as `metadata key #12 ('tokenizer.ggml.tokens'), element 345` or
//! `tensor #3 ('blk.0.attn_q.weight')`, and where useful the absolute byte offset. A user who
//! gets one of these errors from a multi-gigabyte download should be able to tell a truncated
//! download from a writer bug without a hex editor.

use std::path::PathBuf;

/// Why a GGUF file could not be read, or why a typed metadata lookup failed.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened, inspected or memory-mapped.
    #[error("cannot read '{}': {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: it starts with {found:02x?} instead of the magic \"GGUF\"")]
    BadMagic { found: [u8; 4] },

    /// A version this reader does not understand (only 2 and 3 are supported).
    #[error("unsupported GGUF version {version}: {reason}")]
    UnsupportedVersion { version: u32, reason: &'static str },

    /// A read needed more bytes than the file has left.
    #[error("{location}: needs {needed} bytes at offset {offset}, past the end of the file (size {file_size})")]
    Truncated { location: String, offset: u64, needed: u64, file_size: u64 },

    /// A count (of entries, tensors or array elements) that cannot possibly fit in the bytes
    /// that remain. Checked before anything is allocated for it.
    #[error("{location}: {count} {unit} (at least {min_bytes} bytes each) exceed the remaining {remaining} bytes")]
    CountTooLarge { location: String, count: u64, unit: &'static str, min_bytes: u64, remaining: u64 },

    /// A string (key, value or tensor name) that is not UTF-8.
    #[error("{location}: the string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { location: String, offset: u64 },

    /// A metadata value type id outside `0..=12`.
    #[error("{location}: unknown metadata value type id {type_id} at offset {offset}")]
    UnknownValueType { location: String, type_id: u32, offset: u64 },

    /// A bool stored as something other than 0 or 1.
    #[error("{location}: bool byte {value} at offset {offset} is neither 0 nor 1")]
    InvalidBool { location: String, value: u8, offset: u64 },

    /// Arrays of arrays nested deeper than the reader allows (no real file nests at all; the
    /// cap keeps a hostile file from exhausting the stack).
    #[error("{location}: arrays are nested more than {max} deep")]
    NestingTooDeep { location: String, max: usize },

    /// A metadata key that is the empty string.
    #[error("metadata key #{index} is empty")]
    EmptyKey { index: u64 },

    /// The same metadata key twice.
    #[error("metadata key #{index} ('{key}') repeats metadata key #{first}")]
    DuplicateKey { index: u64, key: String, first: u64 },

    /// `general.alignment` is zero or not a power of two.
    #[error("general.alignment is {value}, which is not a nonzero power of two")]
    BadAlignment { value: u64 },

    /// The same tensor name twice.
    #[error("tensor #{index} ('{name}') repeats the name of tensor #{first}")]
    DuplicateTensor { index: u64, name: String, first: u64 },

    /// A ggml type id that no known ggml version defines.
    #[error("{location}: unknown ggml tensor type id {type_id}")]
    UnknownTensorType { location: String, type_id: u32 },

    /// A tensor whose shape, size, offset or data range is impossible.
    #[error("{location}: {problem}")]
    InvalidTensor { location: String, problem: String },

    /// A typed metadata getter found the key holding another type.
    #[error("metadata key '{key}' holds {found}, expected {expected}")]
    WrongType { key: String, expected: &'static str, found: &'static str },

    /// A typed metadata getter found an integer of the right kind whose value does not fit.
    #[error("metadata key '{key}' holds {value}, which does not fit in {expected}")]
    OutOfRange { key: String, value: String, expected: &'static str },
}
