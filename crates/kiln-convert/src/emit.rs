//! Writing the GGUF: each tensor's output type (kept, forced to F32, or the quantization
//! scheme's choice), its values encoded in that type, one tensor at a time.

use std::io::Write;

use half::{bf16, f16};
use kiln_gguf::{GgmlType, GgufWriter, TensorSpec, Value};
use kiln_quant::{QuantScheme, TensorRole};

use crate::error::ConvertError;

/// A tensor to be written, wherever it comes from.
pub(crate) trait InputTensor {
    fn name(&self) -> &str;
    /// ggml order.
    fn dims(&self) -> &[u64];
    /// The type its values are stored as.
    fn stored_type(&self) -> GgmlType;
    /// The values as f32; only asked of F32, F16 and BF16 tensors.
    fn read_f32(&self) -> Result<Vec<f32>, ConvertError>;
    /// The stored bytes; only asked of tensors written in their stored (quantized) type.
    fn raw(&self) -> Result<&[u8], ConvertError>;
}

fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// Tensors llama.cpp's converter always writes in F32 whatever the output type: vectors,
/// norms, biases, expert routers, position and token-type embeddings.
fn converter_keeps_f32(name: &str, dims: &[u64]) -> bool {
    const F32_KINDS: [&str; 4] =
        [".ffn_gate_inp.weight", ".ffn_gate_inp_shexp.weight", "position_embd.weight", "token_types.weight"];
    dims.len() <= 1
        || name.ends_with("_norm.weight")
        || !name.ends_with(".weight")
        || F32_KINDS.iter().any(|k| name.ends_with(k))
}

/// The type a tensor is written as. Without a scheme float weights keep their type (an F16 or
/// BF16 checkpoint stays so, as Ollama keeps them) except those llama.cpp's converter writes
/// in F32; with one, the scheme chooses. Quantized tensors are never requantized.
pub(crate) fn output_type(
    scheme: Option<QuantScheme>,
    role: &TensorRole,
    stored: GgmlType,
) -> Result<GgmlType, ConvertError> {
    let (name, dims) = (role.name, role.dims);
    let ty = match scheme {
        Some(s) => s.tensor_type(role),
        None if converter_keeps_f32(name, dims) => GgmlType::F32,
        None => stored,
    };
    if !is_float(stored) && ty != stored {
        return Err(ConvertError::Requantize { name: name.to_string(), from: stored, to: ty });
    }
    Ok(ty)
}

/// `values` in type `ty`, quantized row by row (`row_len` values each).
fn encode(ty: GgmlType, values: &[f32], row_len: usize) -> Vec<u8> {
    match ty {
        GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
        GgmlType::BF16 => values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
        _ => {
            let row_bytes = kiln_quant::row_bytes(ty, row_len);
            let mut out = vec![0u8; values.len() / row_len * row_bytes];
            for (src, dst) in values.chunks_exact(row_len).zip(out.chunks_exact_mut(row_bytes)) {
                kiln_quant::quantize_weights_row(ty, src, dst);
            }
            out
        }
    }
}

/// llama.cpp's `general.file_type` for a file whose weights are mostly `ty` and not quantized.
fn float_file_type(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F16 => 1,
        GgmlType::BF16 => 32,
        _ => 0,
    }
}

/// The type holding most elements of the tensors with two or more dimensions: what a model
/// "is" (F16, BF16, …) in status lines and `general.file_type`.
pub(crate) fn dominant_type<T: InputTensor>(tensors: &[T]) -> GgmlType {
    let mut counts: Vec<(GgmlType, u64)> = Vec::new();
    for t in tensors.iter().filter(|t| t.dims().len() >= 2) {
        let n: u64 = t.dims().iter().product();
        match counts.iter_mut().find(|(ty, _)| *ty == t.stored_type()) {
            Some(c) => c.1 += n,
            None => counts.push((t.stored_type(), n)),
        }
    }
    counts.into_iter().max_by_key(|c| c.1).map_or(GgmlType::F32, |c| c.0)
}

/// What a quantization scheme needs to know of the whole model.
struct ModelShape {
    arch: String,
    n_layers: usize,
    n_expert: usize,
    has_output: bool,
}

impl ModelShape {
    fn of<T: InputTensor>(writer: &GgufWriter, tensors: &[T]) -> ModelShape {
        let get = |key: &str| writer.metadata().iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let arch = get("general.architecture").and_then(Value::as_str).unwrap_or_default().to_string();
        let count = |key: &str| get(&format!("{arch}.{key}")).and_then(Value::as_u64).unwrap_or(0) as usize;
        ModelShape {
            n_layers: count("block_count"),
            n_expert: count("expert_count"),
            has_output: tensors.iter().any(|t| t.name() == "output.weight"),
            arch,
        }
    }

    fn role<'a>(&'a self, name: &'a str, dims: &'a [u64]) -> TensorRole<'a> {
        TensorRole {
            name,
            dims,
            n_layers: self.n_layers,
            arch: &self.arch,
            n_expert: self.n_expert,
            has_output: self.has_output,
        }
    }
}

/// Writes `metadata` and `tensors` as a GGUF to `out`, setting `general.file_type` and
/// `general.quantization_version`. Returns the bytes written.
pub(crate) fn write_gguf<T: InputTensor>(
    out: &mut dyn Write,
    metadata: Vec<(String, Value)>,
    tensors: &[T],
    scheme: Option<QuantScheme>,
) -> Result<u64, ConvertError> {
    let mut writer = GgufWriter::new();
    for (k, v) in metadata {
        writer.set(k, v);
    }
    let shape = ModelShape::of(&writer, tensors);
    let file_type = scheme.map_or_else(|| float_file_type(dominant_type(tensors)), QuantScheme::file_type);
    writer.set("general.file_type", Value::U32(file_type));
    writer.set("general.quantization_version", Value::U32(2));
    let mut types = Vec::with_capacity(tensors.len());
    for t in tensors {
        let ty = output_type(scheme, &shape.role(t.name(), t.dims()), t.stored_type())?;
        let spec = TensorSpec { name: t.name().to_string(), dims: t.dims().to_vec(), ggml_type: ty };
        writer.add_tensor(spec).map_err(ConvertError::Write)?;
        types.push(ty);
    }
    // The writer's callback speaks io::Error; a conversion error is kept here and returned.
    let mut failure = None;
    let written = writer.write(out, |i, sink| {
        let t = &tensors[i];
        let result = if types[i] == t.stored_type() && !is_float(types[i]) {
            t.raw().map(<[u8]>::to_vec)
        } else {
            t.read_f32().map(|values| encode(types[i], &values, t.dims()[0] as usize))
        };
        match result {
            Ok(bytes) => sink.write_all(&bytes),
            Err(e) => {
                failure = Some(e);
                Err(std::io::Error::other("conversion failed"))
            }
        }
    });
    match (written, failure) {
        (_, Some(e)) => Err(e),
        (Ok(n), None) => Ok(n),
        (Err(e), None) => Err(ConvertError::Write(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_kept_forced_or_chosen_by_the_scheme() {
        let ty = |scheme, name, dims: &[u64], stored| {
            let role = TensorRole { name, dims, n_layers: 2, arch: "llama", n_expert: 4, has_output: true };
            output_type(scheme, &role, stored)
        };
        assert_eq!(ty(None, "blk.0.ffn_up.weight", &[64, 32], GgmlType::BF16).unwrap(), GgmlType::BF16);
        assert_eq!(ty(None, "blk.0.attn_norm.weight", &[64], GgmlType::BF16).unwrap(), GgmlType::F32);
        assert_eq!(ty(None, "blk.0.ffn_gate_inp.weight", &[64, 4], GgmlType::F16).unwrap(), GgmlType::F32);
        assert_eq!(ty(None, "blk.0.ffn_gate_inp_shexp.weight", &[64, 1], GgmlType::F16).unwrap(), GgmlType::F32);
        assert_eq!(ty(None, "position_embd.weight", &[64, 128], GgmlType::BF16).unwrap(), GgmlType::F32);
        assert_eq!(ty(None, "blk.0.attn_q.bias", &[64, 1], GgmlType::BF16).unwrap(), GgmlType::F32);
        let q8 = Some(QuantScheme::Q8_0);
        assert_eq!(ty(q8, "blk.0.ffn_up.weight", &[64, 32], GgmlType::F16).unwrap(), GgmlType::Q8_0);
        assert_eq!(ty(q8, "blk.0.ffn_up.weight", &[64, 32], GgmlType::Q8_0).unwrap(), GgmlType::Q8_0);
        let err = ty(q8, "blk.0.ffn_up.weight", &[64, 32], GgmlType::Q4_0).unwrap_err().to_string();
        assert!(err.contains("already quantized (Q4_0); requantizing it to Q8_0 is refused"), "{err}");
    }

    #[test]
    fn floats_encode_little_endian_and_rows_quantize_separately() {
        assert_eq!(encode(GgmlType::F32, &[1.0], 1), 1.0f32.to_le_bytes());
        assert_eq!(encode(GgmlType::F16, &[1.0], 1), [0x00, 0x3c]);
        assert_eq!(encode(GgmlType::BF16, &[1.0], 1), [0x80, 0x3f]);
        let values: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let bytes = encode(GgmlType::Q8_0, &values, 32);
        assert_eq!(bytes.len(), 2 * 34);
        let mut back = vec![0f32; 64];
        for (row, out) in bytes.chunks(34).zip(back.chunks_mut(32)) {
            kiln_quant::dequantize_row(GgmlType::Q8_0, row, out);
        }
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= 0.25, "{a} vs {b}");
        }
    }
}
