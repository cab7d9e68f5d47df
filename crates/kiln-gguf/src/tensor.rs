//! Tensor descriptors: decoding, shape validation, and data-range validation.

use std::collections::HashMap;
use std::fmt;

use crate::reader::Reader;
use crate::{GgmlType, GgufError};

/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: usize = 4;

/// The fewest bytes one tensor descriptor can take: empty name (8), n_dims (4), one dim (8),
/// type (4), offset (8). Used to reject absurd tensor counts before allocating for them.
pub(crate) const MIN_TENSOR_INFO_BYTES: usize = 8 + 4 + 8 + 4 + 8;

/// One tensor's descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Extent of each dimension in ggml order: `dims[0]` is the contiguous row length, so a
    /// `[n_embd, n_vocab]` embedding has `n_vocab` rows of `n_embd` elements. 1 to 4 entries.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the data relative to [`crate::GgufFile::data_offset`]; a multiple of the
    /// file's alignment.
    pub offset: u64,
    /// Size of the data in bytes (whole blocks of `ggml_type`).
    pub size: u64,
}

impl TensorInfo {
    /// Total number of elements: the product of `dims`. Checked not to overflow when the file
    /// was parsed; saturates for a hand-built descriptor that would.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |acc, &d| acc.saturating_mul(d))
    }

    /// Number of rows: the product of every dimension but the first.
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).fold(1u64, |acc, &d| acc.saturating_mul(d))
    }
}

impl fmt::Display for TensorInfo {
    /// `name [d0, d1] TYPE`, e.g. `token_embd.weight [576, 49152] Q4_1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.name, self.dims, self.ggml_type)
    }
}

fn location(index: usize, name: &str) -> String {
    format!("tensor #{index} ('{name}')")
}

fn invalid(index: usize, name: &str, problem: String) -> GgufError {
    GgufError::InvalidTensor { location: location(index, name), problem }
}

/// Reads and validates one tensor descriptor (everything that does not need the data
/// section's position: that is checked by [`check_data_ranges`]).
fn read_tensor_info(r: &mut Reader<'_>, index: usize, alignment: u64, file_size: u64) -> Result<TensorInfo, GgufError> {
    let name = r.string().map_err(|f| f.at(format!("tensor #{index}"), file_size))?;
    let at = |f: crate::reader::Fault| f.at(location(index, &name), file_size);

    let n_dims = r.u32().map_err(at)?;
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(invalid(index, &name, format!("has {n_dims} dimensions; ggml allows 1 to {MAX_DIMS}")));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(r.u64().map_err(at)?);
    }
    let type_id = r.u32().map_err(at)?;
    let offset = r.u64().map_err(at)?;

    let ggml_type = GgmlType::from_id(type_id)
        .ok_or_else(|| GgufError::UnknownTensorType { location: location(index, &name), type_id })?;
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid(index, &name, format!("dimensions {dims:?} overflow a 64-bit element count")))?;
    let block = ggml_type.block_size() as u64;
    // Quantised blocks never straddle rows, so the row length itself must be whole blocks.
    if dims[0] % block != 0 {
        return Err(invalid(
            index,
            &name,
            format!("row length {} is not a multiple of the {ggml_type} block size {block}", dims[0]),
        ));
    }
    let size = ggml_type.bytes_for(n_elements).ok_or_else(|| {
        invalid(index, &name, format!("{n_elements} {ggml_type} elements overflow a 64-bit byte size"))
    })?;
    if offset % alignment != 0 {
        return Err(invalid(
            index,
            &name,
            format!("data offset {offset} is not a multiple of the alignment {alignment}"),
        ));
    }
    Ok(TensorInfo { name, dims, ggml_type, offset, size })
}

/// The decoded tensor descriptors plus a name index.
pub(crate) struct Tensors {
    pub(crate) infos: Vec<TensorInfo>,
    pub(crate) index: HashMap<String, usize>,
}

/// Reads `count` tensor descriptors. `count` has already been checked against the file size.
pub(crate) fn read_tensor_infos(
    r: &mut Reader<'_>,
    count: usize,
    alignment: u64,
    file_size: u64,
) -> Result<Tensors, GgufError> {
    let mut infos = Vec::with_capacity(count);
    let mut index = HashMap::with_capacity(count);
    for i in 0..count {
        let info = read_tensor_info(r, i, alignment, file_size)?;
        if let Some(&first) = index.get(&info.name) {
            return Err(GgufError::DuplicateTensor { index: i as u64, name: info.name, first: first as u64 });
        }
        index.insert(info.name.clone(), i);
        infos.push(info);
    }
    Ok(Tensors { infos, index })
}

/// Checks that every tensor's data lies inside the file and that no two overlap, so that
/// [`crate::GgufFile::tensor_data`] can slice without checks failing later.
pub(crate) fn check_data_ranges(infos: &[TensorInfo], data_offset: u64, file_size: u64) -> Result<(), GgufError> {
    let mut ranges = Vec::with_capacity(infos.len());
    for (i, t) in infos.iter().enumerate() {
        let range = data_offset.checked_add(t.offset).and_then(|start| Some((start, start.checked_add(t.size)?)));
        match range {
            Some((start, end)) if end <= file_size => ranges.push((start, end, i)),
            Some((start, end)) => {
                return Err(invalid(
                    i,
                    &t.name,
                    format!("data [{start}..{end}) runs past the end of the file (size {file_size})"),
                ))
            }
            None => {
                return Err(invalid(
                    i,
                    &t.name,
                    format!(
                        "data offset {} + {} bytes after the data section start {data_offset} overflows",
                        t.offset, t.size
                    ),
                ))
            }
        }
    }
    // Empty tensors occupy nothing and cannot overlap anything.
    ranges.retain(|&(start, end, _)| start < end);
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let (a_start, a_end, a) = pair[0];
        let (b_start, b_end, b) = pair[1];
        if b_start < a_end {
            return Err(invalid(
                b,
                &infos[b].name,
                format!(
                    "data [{b_start}..{b_end}) overlaps the data [{a_start}..{a_end}) of {}",
                    location(a, &infos[a].name)
                ),
            ));
        }
    }
    Ok(())
}
