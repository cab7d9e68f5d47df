//! Quantization schemes for whole model files (`q4_K_M`, `q8_0`, …): which type each tensor
//! of a model gets.

use kiln_gguf::GgmlType;

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

/// What the scheme needs to know about one tensor to pick its type.
#[derive(Debug, Clone, Copy)]
pub struct TensorRole<'a> {
    /// GGUF tensor name (`blk.3.attn_v.weight`).
    pub name: &'a str,
    /// GGUF dimensions, innermost (row length) first.
    pub dims: &'a [u64],
    /// Number of transformer blocks in the model.
    pub n_layers: usize,
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

    /// The type the scheme stores `tensor` as.
    pub fn tensor_type(self, tensor: &TensorRole) -> GgmlType {
        if tensor.dims.len() < 2 || !tensor.name.ends_with(".weight") || tensor.name.contains("ffn_gate_inp") {
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
        fit_row(base, tensor.dims[0])
    }
}

/// K-quant blocks span 256 values; a row that is not whole blocks takes the closest legacy
/// type instead (llama.cpp's fallbacks).
fn fit_row(ty: GgmlType, row_len: u64) -> GgmlType {
    if row_len.is_multiple_of(ty.block_size() as u64) {
        return ty;
    }
    match ty {
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        _ => GgmlType::F16,
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

    #[test]
    fn norms_and_routers_stay_f32_and_short_rows_fall_back() {
        let role = |name, dims| TensorRole { name, dims, n_layers: 2 };
        let q = QuantScheme::Q4KM;
        assert_eq!(q.tensor_type(&role("blk.0.attn_norm.weight", &[64])), GgmlType::F32);
        assert_eq!(q.tensor_type(&role("blk.0.ffn_gate_inp.weight", &[64, 4])), GgmlType::F32);
        assert_eq!(q.tensor_type(&role("blk.0.ffn_up.weight", &[256, 64])), GgmlType::Q4_K);
        assert_eq!(q.tensor_type(&role("blk.0.ffn_up.weight", &[64, 256])), GgmlType::Q5_0);
    }
}
