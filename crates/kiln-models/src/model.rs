//! A loaded model: the memory-mapped file, its configuration and its architecture's weights.

use crate::batch::Batch;
use crate::config::{Architecture, ModelConfig};
use crate::decoder::{Scratch, StepCtx};
use crate::gemma3::Gemma3;
use crate::kv::KvCache;
use crate::llama::Llama;
use crate::weights::TensorLoader;
use crate::ModelError;
use kiln_gguf::GgufFile;
use kiln_kernels::{KvLayout, ThreadPool};
use std::path::Path;
use std::sync::Arc;

enum Network {
    Llama(Llama),
    Gemma3(Gemma3),
}

/// A model ready to run. Weights stay in the memory-mapped file; the model holds only views.
pub struct Model {
    file: Arc<GgufFile>,
    config: ModelConfig,
    network: Network,
}

/// Bytes read per page when warming the mapping; the usual page size.
const PAGE: usize = 4096;

impl Model {
    /// Opens and checks a GGUF model. `progress(done, total)` is called while the weights are
    /// paged in, so a user sees a large model load instead of a silent first token.
    pub fn load(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Model, ModelError> {
        let file = Arc::new(GgufFile::open(path)?);
        let model = Model::from_file(file)?;
        model.warm(progress);
        Ok(model)
    }

    /// Builds a model over an already parsed file.
    pub fn from_file(file: Arc<GgufFile>) -> Result<Model, ModelError> {
        let config = ModelConfig::from_gguf(&file)?;
        let loader = TensorLoader::new(&file);
        let network = match config.arch {
            Architecture::Llama
            | Architecture::Qwen2
            | Architecture::Qwen3
            | Architecture::Qwen2Moe
            | Architecture::Qwen3Moe
            | Architecture::Phi3
            | Architecture::Deepseek2 => Network::Llama(Llama::load(&config, &loader)?),
            Architecture::Gemma3 => Network::Gemma3(Gemma3::load(&config, &loader)?),
        };
        Ok(Model { file, config, network })
    }

    /// Touches every page of tensor data once (sequentially, which the kernel reads ahead
    /// well), reporting progress, so the first request does not pay for page faults in the
    /// middle of a forward pass.
    pub fn warm(&self, progress: &mut dyn FnMut(u64, u64)) {
        let total: u64 = self.file.tensors().iter().map(|t| t.size).sum();
        let mut done = 0u64;
        let mut checksum = 0u8;
        for t in self.file.tensors() {
            let data = self.file.tensor_data(t);
            for page in data.chunks(PAGE) {
                checksum = checksum.wrapping_add(page[0]);
            }
            done += t.size;
            progress(done, total);
        }
        std::hint::black_box(checksum);
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// Prepares the model for sequences of up to `num_ctx` tokens (LongRoPE models pick their
    /// RoPE factors by it).
    pub fn set_context(&mut self, num_ctx: usize) {
        if let Network::Llama(m) = &mut self.network {
            m.set_context(num_ctx);
        }
    }

    /// An empty KV cache of `n_blocks` blocks of `block_size` token slots for this model.
    /// Latent attention caches one latent and rotary key per token (one "KV head", no values).
    pub fn new_kv_cache(&self, n_blocks: usize, block_size: usize) -> KvCache {
        let c = &self.config;
        let layout = match c.mla {
            Some(_) => KvLayout { n_blocks, block_size, n_kv_heads: 1, head_dim: c.head_dim, v_head_dim: 0 },
            None => KvLayout::keys_and_values(n_blocks, block_size, c.n_kv_heads, c.head_dim),
        };
        KvCache::new(c.n_layers, layout)
    }

    /// Runs one step: writes the batch's keys and values into `kv` and returns the logits of
    /// `batch.logits_for`, `[logits_for.len()][vocab]`.
    pub fn forward(
        &self,
        pool: &ThreadPool,
        batch: &Batch,
        kv: &mut KvCache,
        scratch: &mut Scratch,
    ) -> Result<Vec<f32>, ModelError> {
        batch.validate(kv.layout.block_size, kv.layout.n_blocks, self.config.vocab_size)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let ctx = StepCtx { file: &self.file, pool, batch };
        Ok(match &self.network {
            Network::Llama(m) => m.forward(&ctx, kv, scratch),
            Network::Gemma3(m) => m.forward(&ctx, kv, scratch),
        })
    }
}
