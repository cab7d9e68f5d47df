//! Quantization schemes for whole model files (`q4_K_M`, `q8_0`, …): which type each tensor
//! of a model gets.

mod names;

use kiln_gguf::GgmlType;
use names::Category;

/// A model-file quantization as named on the command line (`--quantize q4_K_M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantScheme {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4KM,
    Q5KM,
    Q6K,
}

/// What the scheme needs to know about one tensor, and the model it belongs to, to pick its
/// type.
#[derive(Debug, Clone, Copy)]
pub struct TensorRole<'a> {
    /// GGUF tensor name (`blk.3.attn_v.weight`).
    pub name: &'a str,
    /// GGUF dimensions, innermost (row length) first.
    pub dims: &'a [u64],
    /// Number of transformer blocks in the model (`{arch}.block_count`).
    pub n_layers: usize,
    /// The model's `general.architecture` (`llama`, `falcon`, …): a few rules are per
    /// architecture.
    pub arch: &'a str,
    /// Experts per MoE layer (`{arch}.expert_count`), 0 for a dense model.
    pub n_expert: usize,
    /// Whether the model has its own `output.weight`. Without one the output projection
    /// reuses `token_embd.weight`, which then gets the output's type.
    pub has_output: bool,
}

impl QuantScheme {
    pub const ALL: [QuantScheme; 7] = [
        QuantScheme::F32,
        QuantScheme::F16,
        QuantScheme::Q8_0,
        QuantScheme::Q4_0,
        QuantScheme::Q4KM,
        QuantScheme::Q5KM,
        QuantScheme::Q6K,
    ];

    /// Parses a scheme name the way Ollama accepts them (case does not matter).
    pub fn parse(s: &str) -> Option<QuantScheme> {
        QuantScheme::ALL.into_iter().find(|q| q.name().eq_ignore_ascii_case(s))
    }

    /// The canonical name (`q4_K_M`).
    pub fn name(self) -> &'static str {
        match self {
            QuantScheme::F32 => "f32",
            QuantScheme::F16 => "f16",
            QuantScheme::Q8_0 => "q8_0",
            QuantScheme::Q4_0 => "q4_0",
            QuantScheme::Q4KM => "q4_K_M",
            QuantScheme::Q5KM => "q5_K_M",
            QuantScheme::Q6K => "q6_K",
        }
    }

    /// llama.cpp's `general.file_type` value for this scheme.
    pub fn file_type(self) -> u32 {
        match self {
            QuantScheme::F32 => 0,
            QuantScheme::F16 => 1,
            QuantScheme::Q4_0 => 2,
            QuantScheme::Q8_0 => 7,
            QuantScheme::Q4KM => 15,
            QuantScheme::Q5KM => 17,
            QuantScheme::Q6K => 18,
        }
    }

    /// The type the scheme stores `tensor` as: the type `llama-quantize` (without an importance
    /// matrix) gives it.
    ///
    /// Tensors llama.cpp never quantizes (norms, biases, routers, 1-D tensors, …) are `F32`:
    /// llama.cpp keeps them in their source type, which is `F32` in its converted models.
    ///
    /// Two of llama.cpp's rules count tensors in file order; here they use the block number,
    /// which is the same whenever every block has one attention value tensor (`attn_v`,
    /// `attn_qkv` or `attn_kv_b`) and, in dense models, one `ffn_down`. llama.cpp's 70B rule
    /// (more bits for `attn_v`) is taken for `llama`, `deci`, `olmo` and `qwen2` with 80
    /// blocks and `jais2` with 68; llama.cpp also exempts an 80-block `llama` without grouped
    /// query attention (LLaMA-1 65B), which these fields cannot tell apart.
    pub fn tensor_type(self, tensor: &TensorRole) -> GgmlType {
        if !names::is_quantizable(tensor.name, tensor.dims, tensor.arch) {
            return GgmlType::F32;
        }
        let base = match self {
            QuantScheme::F32 => return GgmlType::F32,
            QuantScheme::F16 => return GgmlType::F16,
            QuantScheme::Q8_0 => GgmlType::Q8_0,
            QuantScheme::Q4_0 => GgmlType::Q4_0,
            QuantScheme::Q4KM => GgmlType::Q4_K,
            QuantScheme::Q5KM => GgmlType::Q5_K,
            QuantScheme::Q6K => GgmlType::Q6_K,
        };
        fit_row(self.mixture_type(base, tensor), tensor.dims[0])
    }

    /// llama.cpp's `llama_tensor_get_type_impl` for this scheme: the mixture's type for a
    /// quantizable tensor before any fallback for its row length.
    fn mixture_type(self, base: GgmlType, t: &TensorRole) -> GgmlType {
        let falcon = t.arch == "falcon";
        let name = t.name;
        if t.arch == "glm5-next" && ["attn_q_a", "attn_q_b", "nextn.eh_proj"].iter().any(|p| name.contains(p)) {
            return GgmlType::Q8_0;
        }
        let more_bits = || use_more_bits(names::layer(name), t.n_layers);
        let category = names::category(name);
        // With tied embeddings `token_embd` is the output projection too.
        if category == Category::Output || (category == Category::TokenEmbd && !t.has_output) {
            return if falcon || !t.dims[0].is_multiple_of(base.block_size() as u64) {
                GgmlType::Q8_0
            } else if base != GgmlType::Q8_0 {
                GgmlType::Q6_K
            } else {
                base
            };
        }
        match category {
            Category::AttnV => {
                let mut ty = base;
                if matches!(self, QuantScheme::Q4KM | QuantScheme::Q5KM) && more_bits() {
                    ty = GgmlType::Q6_K;
                }
                if is_70b(t) && ty == GgmlType::Q4_K {
                    ty = GgmlType::Q5_K;
                }
                if t.n_expert == 8 {
                    ty = GgmlType::Q8_0;
                }
                ty
            }
            Category::AttnK if t.n_expert == 8 => GgmlType::Q8_0,
            Category::FfnDown => match self {
                QuantScheme::Q4KM if falcon => {
                    if names::layer(name) < t.n_layers / 16 {
                        GgmlType::Q6_K
                    } else if more_bits() {
                        GgmlType::Q5_K
                    } else {
                        GgmlType::Q4_K
                    }
                }
                QuantScheme::Q4KM | QuantScheme::Q5KM if more_bits() => GgmlType::Q6_K,
                _ => base,
            },
            Category::AttnOutput if !falcon && t.n_expert == 8 && self == QuantScheme::Q4KM => GgmlType::Q5_K,
            _ => base,
        }
    }
}

/// llama.cpp's choice of the blocks that get more bits in the `_M` mixtures: the first and
/// last eighth, and every third block in between.
fn use_more_bits(layer: usize, n_layers: usize) -> bool {
    layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2
}

/// Whether llama.cpp sizes the model as a 70B (see [`QuantScheme::tensor_type`]).
fn is_70b(t: &TensorRole) -> bool {
    match t.arch {
        "llama" | "deci" | "olmo" | "qwen2" => t.n_layers == 80,
        "jais2" => t.n_layers == 68,
        _ => false,
    }
}

/// K-quant blocks span 256 values; a row that is not whole blocks takes the closest 32-block
/// type instead, and a row that is not whole 32-blocks either is `F16` (llama.cpp's
/// `tensor_type_fallback`).
fn fit_row(ty: GgmlType, row_len: u64) -> GgmlType {
    if row_len.is_multiple_of(ty.block_size() as u64) {
        return ty;
    }
    let fallback = match ty {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        _ => ty,
    };
    if row_len.is_multiple_of(fallback.block_size() as u64) {
        fallback
    } else {
        GgmlType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case() {
        for q in QuantScheme::ALL {
            assert_eq!(QuantScheme::parse(q.name()), Some(q));
            assert_eq!(QuantScheme::parse(&q.name().to_uppercase()), Some(q));
        }
        assert_eq!(QuantScheme::parse("q3_K_L"), None);
    }

    fn role<'a>(name: &'a str, dims: &'a [u64]) -> TensorRole<'a> {
        TensorRole { name, dims, n_layers: 2, arch: "llama", n_expert: 0, has_output: true }
    }

    #[test]
    fn norms_and_routers_stay_f32_and_short_rows_fall_back() {
        let q = QuantScheme::Q4KM;
        assert_eq!(q.tensor_type(&role("blk.0.attn_norm.weight", &[64])), GgmlType::F32);
        assert_eq!(q.tensor_type(&role("blk.0.ffn_gate_inp.weight", &[64, 4])), GgmlType::F32);
        assert_eq!(QuantScheme::F16.tensor_type(&role("blk.0.ffn_gate_inp.weight", &[64, 4])), GgmlType::F32);
        assert_eq!(q.tensor_type(&role("blk.0.ffn_up.weight", &[256, 64])), GgmlType::Q4_K);
        assert_eq!(q.tensor_type(&role("blk.0.ffn_up.weight", &[64, 256])), GgmlType::Q5_0);
        assert_eq!(q.tensor_type(&role("blk.0.ffn_up.weight", &[16, 256])), GgmlType::F16);
    }

    #[test]
    fn more_bits_for_the_ends_and_every_third_block() {
        let picked: Vec<usize> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(picked, [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
    }

    #[test]
    fn falcon_and_70b_rules() {
        let falcon = |name, n_layers| TensorRole { arch: "falcon", n_layers, ..role(name, &[256, 256]) };
        let q = QuantScheme::Q4KM;
        assert_eq!(q.tensor_type(&falcon("output.weight", 32)), GgmlType::Q8_0);
        assert_eq!(q.tensor_type(&falcon("blk.1.ffn_down.weight", 32)), GgmlType::Q6_K);
        assert_eq!(q.tensor_type(&falcon("blk.3.ffn_down.weight", 32)), GgmlType::Q5_K);
        assert_eq!(q.tensor_type(&falcon("blk.4.ffn_down.weight", 32)), GgmlType::Q4_K);
        let llama70 = |name| TensorRole { n_layers: 80, ..role(name, &[256, 256]) };
        assert_eq!(q.tensor_type(&llama70("blk.11.attn_v.weight")), GgmlType::Q5_K);
        assert_eq!(q.tensor_type(&llama70("blk.12.attn_v.weight")), GgmlType::Q6_K);
        assert_eq!(QuantScheme::Q5KM.tensor_type(&llama70("blk.11.attn_v.weight")), GgmlType::Q5_K);
    }
}
