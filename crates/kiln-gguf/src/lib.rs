//! GGUF reader (to be completed): metadata, tensor descriptors, memory-mapped tensor data.
mod ggml_type;
pub use ggml_type::GgmlType;
