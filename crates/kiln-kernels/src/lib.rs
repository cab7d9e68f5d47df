//! kiln-kernels: the compute of a forward pass on the CPU.
//!
//! - [`pool`]: the persistent worker pool every parallel op runs on;
//! - [`matmul`]: quantized weight × f32 activation products (over `kiln-quant`'s microkernels);
//! - [`attention`]: causal attention over the paged f16 KV cache;
//! - [`bidirectional`]: full attention within each sequence, for encoders (no cache);
//! - [`ops`]: norms, RoPE and activations.
pub mod attention;
pub mod bidirectional;
pub mod matmul;
pub mod ops;
pub mod pool;
pub mod vec;

pub use attention::{paged_attention, AttnParams, AttnQuery, KvLayer, KvLayout};
pub use bidirectional::{bidirectional_attention, BidirectionalParams};
pub use matmul::{matmul, matmul_group, MatmulScratch, QMatrix};
pub use ops::{Rope, RopeStyle, YarnRamp};
pub use pool::ThreadPool;
