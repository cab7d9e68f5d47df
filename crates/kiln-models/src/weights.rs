//! Typed access to the tensors of a GGUF file: shape checks at load, zero-copy views at run time.

use crate::ModelError;
use kiln_gguf::{GgmlType, GgufFile};
use kiln_kernels::QMatrix;

/// A weight matrix inside the memory-mapped file: `rows` × `cols` of type `ty`.
/// It records where the bytes are, not the bytes, so the model owns no copy of the weights.
#[derive(Clone, Copy, Debug)]
pub struct Weight {
    tensor: usize,
    /// Where this matrix starts within its tensor, in rows: one expert of an MoE tensor, or
    /// one part of a fused projection (Phi 3's QKV).
    first_row: usize,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
}

impl Weight {
    /// The zero-copy view of this matrix in `file` (the file it was loaded from).
    pub fn view<'f>(&self, file: &'f GgufFile) -> QMatrix<'f> {
        let row = kiln_quant::row_bytes(self.ty, self.cols);
        let start = self.first_row * row;
        let data = &file.tensor_data(&file.tensors()[self.tensor])[start..start + self.rows * row];
        QMatrix { ty: self.ty, rows: self.rows, cols: self.cols, data }
    }
}

/// Looks tensors up by name and checks them against the shapes the architecture expects.
pub struct TensorLoader<'f> {
    file: &'f GgufFile,
}

impl<'f> TensorLoader<'f> {
    pub fn new(file: &'f GgufFile) -> Self {
        TensorLoader { file }
    }

    fn find(&self, name: &str, dims: &[u64]) -> Result<(usize, GgmlType), ModelError> {
        let idx = self
            .file
            .tensors()
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        let t = &self.file.tensors()[idx];
        if t.dims != dims {
            return Err(ModelError::BadShape {
                name: name.to_string(),
                expected: dims.to_vec(),
                found: t.dims.clone(),
            });
        }
        Ok((idx, t.ggml_type))
    }

    pub fn file(&self) -> &'f GgufFile {
        self.file
    }

    /// Whether the file has a tensor called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.file.tensor(name).is_some()
    }

    /// A matrix of `rows` rows of `cols` elements (GGUF dims `[cols, rows]`) in a type the
    /// kernels can multiply.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Weight, ModelError> {
        let (tensor, ty) = self.find(name, &[cols as u64, rows as u64])?;
        if !kiln_quant::is_supported(ty) {
            return Err(ModelError::UnsupportedType { name: name.to_string(), ty });
        }
        Ok(Weight { tensor, first_row: 0, ty, rows, cols })
    }

    /// A fused matrix of `parts.iter().sum()` rows split into consecutive parts of `parts[i]`
    /// rows each, all views into the one tensor (Phi 3's QKV and gate-up projections).
    pub fn split_rows(&self, name: &str, parts: &[usize], cols: usize) -> Result<Vec<Weight>, ModelError> {
        let whole = self.matrix(name, parts.iter().sum(), cols)?;
        let mut first_row = 0;
        Ok(parts
            .iter()
            .map(|&rows| {
                let w = Weight { first_row, rows, ..whole };
                first_row += rows;
                w
            })
            .collect())
    }

    /// A stack of `n` matrices of `rows` × `cols` (GGUF dims `[cols, rows, n]`): the experts of
    /// an MoE layer, one `Weight` each, all views into the one tensor.
    pub fn matrices(&self, name: &str, n: usize, rows: usize, cols: usize) -> Result<Vec<Weight>, ModelError> {
        let (tensor, ty) = self.find(name, &[cols as u64, rows as u64, n as u64])?;
        if !kiln_quant::is_supported(ty) {
            return Err(ModelError::UnsupportedType { name: name.to_string(), ty });
        }
        Ok((0..n).map(|e| Weight { tensor, first_row: e * rows, ty, rows, cols }).collect())
    }

    /// The token embedding table and the output projection, `[vocab][n_embd]` each; the
    /// output is the embedding table itself when the file ties them (no `output.weight`).
    pub fn embedding_and_output(&self, vocab: usize, n_embd: usize) -> Result<(Weight, Weight), ModelError> {
        let embd = self.matrix("token_embd.weight", vocab, n_embd)?;
        let output = if self.has("output.weight") { self.matrix("output.weight", vocab, n_embd)? } else { embd };
        Ok((embd, output))
    }

    /// A vector of `n` values (norm weights), dequantized to f32: these are tiny and read
    /// for every token, so a private f32 copy costs nothing and saves a conversion per use.
    pub fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        let (tensor, ty) = self.find(name, &[n as u64])?;
        if !kiln_quant::is_supported(ty) {
            return Err(ModelError::UnsupportedType { name: name.to_string(), ty });
        }
        let mut out = vec![0f32; n];
        kiln_quant::dequantize_row(ty, self.file.tensor_data(&self.file.tensors()[tensor]), &mut out);
        Ok(out)
    }
}
