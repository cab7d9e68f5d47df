//! [`GgufFile`]: parsing the whole header up front, then cheap access to everything.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::metadata::{read_metadata, MIN_KV_BYTES};
use crate::reader::Reader;
use crate::tensor::{check_data_ranges, read_tensor_infos, MIN_TENSOR_INFO_BYTES};
use crate::{Array, GgufError, TensorInfo, Value};

/// Where the data section is aligned when the file does not say (`general.alignment`).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The metadata key that overrides [`DEFAULT_ALIGNMENT`].
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// The file's bytes: memory-mapped for real files, so multi-gigabyte tensor data is paged in
/// on demand rather than copied; owned for files built in memory.
enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(map) => map,
            Backing::Owned(bytes) => bytes,
        }
    }
}

/// A parsed GGUF file.
///
/// Parsing validates everything up front (header, every metadata value, every tensor
/// descriptor, and that every tensor's data lies inside the file without overlapping
/// another), so that the accessors afterwards are infallible and cheap.
pub struct GgufFile {
    backing: Backing,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl GgufFile {
    /// Opens and parses the file at `path`, memory-mapping it: tensor data is not copied.
    ///
    /// Like every memory-mapped reader, this assumes the file is not modified or truncated by
    /// another process while the returned value lives; model files are written once, and
    /// copying them into memory instead would double the footprint of every load.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io_err = |source| GgufError::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let backing = if len == 0 {
            // Mapping zero bytes is an error on some platforms; an empty file still deserves
            // the ordinary "truncated header" message.
            Backing::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and lives as long as `self`; see the doc comment
            // for the (universal) caveat about concurrent modification of the file.
            Backing::Mapped(unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?)
        };
        Self::parse(backing)
    }

    /// Parses a file held in memory (for tests, fuzzing, or files received over a network).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        Self::parse(Backing::Owned(bytes))
    }

    fn parse(backing: Backing) -> Result<GgufFile, GgufError> {
        let bytes = backing.bytes();
        let file_size = bytes.len() as u64;
        let mut r = Reader::new(bytes);
        let at_header = |f: crate::reader::Fault| f.at("header", file_size);

        let magic = r.take(4).map_err(at_header)?;
        if magic != b"GGUF" {
            let mut found = [0u8; 4];
            found.copy_from_slice(magic);
            return Err(GgufError::BadMagic { found });
        }
        let version = r.u32().map_err(at_header)?;
        check_version(version)?;
        let tensor_count = r.u64().map_err(at_header)?;
        let kv_count = r.u64().map_err(at_header)?;
        // Both counts are checked before either section is read, so a hostile header fails
        // fast and nothing is ever allocated in proportion to an unchecked count.
        let kv_count = r.check_count(kv_count, MIN_KV_BYTES, "metadata entries").map_err(at_header)?;
        let tensor_count =
            r.check_count(tensor_count, MIN_TENSOR_INFO_BYTES, "tensor descriptors").map_err(at_header)?;

        let metadata = read_metadata(&mut r, kv_count, file_size)?;
        let alignment = alignment_of(&metadata.entries, &metadata.index)?;
        let tensors = read_tensor_infos(&mut r, tensor_count, alignment, file_size)?;

        let data_offset =
            (r.pos() as u64).checked_next_multiple_of(alignment).ok_or(GgufError::BadAlignment { value: alignment })?;
        check_data_ranges(&tensors.infos, data_offset, file_size)?;

        Ok(GgufFile {
            backing,
            version,
            alignment,
            data_offset,
            metadata: metadata.entries,
            metadata_index: metadata.index,
            tensors: tensors.infos,
            tensor_index: tensors.index,
        })
    }

    /// The GGUF version (2 or 3; they differ only in that 3 permits big-endian files, which
    /// this reader rejects through their byte-swapped version number).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment: `general.alignment`, or 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// The absolute file offset of the tensor data section: the end of the tensor
    /// descriptors rounded up to the alignment. For a file with no tensors this may lie past
    /// the end of the file (nothing is read there).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The size of the file in bytes.
    pub fn file_size(&self) -> u64 {
        self.backing.bytes().len() as u64
    }

    /// All metadata entries, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// Looks up `key` and converts it with `convert`, which returns `None` when the value has
    /// the wrong type, or `Some(Err(..))` for a right-typed value out of range.
    fn get_typed<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        convert: impl FnOnce(&'a Value) -> Option<Result<T, ()>>,
    ) -> Result<Option<T>, GgufError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match convert(value) {
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(())) => Err(GgufError::OutOfRange { key: key.to_owned(), value: value.to_string(), expected }),
            None => Err(GgufError::WrongType { key: key.to_owned(), expected, found: value.type_name() }),
        }
    }

    /// A string value. `Ok(None)` when absent; `WrongType` when not a string.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.get_typed(key, "string", |v| v.as_str().map(Ok))
    }

    /// An integer value of any type, if non-negative. `OutOfRange` for a negative integer,
    /// `WrongType` for a non-integer.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.get_typed(key, "u64", |v| v.is_integer().then(|| v.as_u64().ok_or(())))
    }

    /// An integer value of any type that fits in a `u32`.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        self.get_typed(key, "u32", |v| v.is_integer().then(|| v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or(())))
    }

    /// An integer value of any type that fits in an `i64`.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, GgufError> {
        self.get_typed(key, "i64", |v| v.is_integer().then(|| v.as_i64().ok_or(())))
    }

    /// A number: f32, f64 (rounded; a finite f64 beyond f32's range is `OutOfRange`) or an
    /// integer (writers are not consistent about, e.g., `rope.freq_base`).
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        self.get_typed(key, "f32", |v| match *v {
            Value::F32(x) => Some(Ok(x)),
            _ => v.as_f64().map(|x| {
                let y = x as f32;
                if x.is_finite() && !y.is_finite() {
                    Err(())
                } else {
                    Ok(y)
                }
            }),
        })
    }

    /// A bool value (integers are not reinterpreted).
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.get_typed(key, "bool", |v| v.as_bool().map(Ok))
    }

    /// An array value of any element type.
    pub fn get_array(&self, key: &str) -> Result<Option<&Array>, GgufError> {
        self.get_typed(key, "array", |v| v.as_array().map(Ok))
    }

    /// All tensor descriptors, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The descriptor of the tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The exact bytes of tensor `t`'s data. Every descriptor from [`Self::tensors`] was
    /// checked at parse time to lie inside the file. A descriptor that does not (one built by
    /// hand, or taken from another file) gets an empty slice rather than a panic.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let range = self
            .data_offset
            .checked_add(t.offset)
            .and_then(|start| Some((usize::try_from(start).ok()?, usize::try_from(t.size).ok()?)))
            .and_then(|(start, len)| Some(start..start.checked_add(len)?));
        range.and_then(|r| self.backing.bytes().get(r)).unwrap_or(&[])
    }
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("file_size", &self.file_size())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

fn check_version(version: u32) -> Result<(), GgufError> {
    let reason = match version {
        2 | 3 => return Ok(()),
        1 => "version 1 (pre-2023 files with 32-bit counts) is no longer supported; re-convert the model",
        // A little-endian reader sees a big-endian 2 or 3 as 0x02000000 or 0x03000000.
        v if v & 0xffff == 0 => "this looks like a big-endian file, which is not supported",
        _ => "only versions 2 and 3 are supported",
    };
    Err(GgufError::UnsupportedVersion { version, reason })
}

/// `general.alignment`, which must be a u32 nonzero power of two, or the default.
fn alignment_of(entries: &[(String, Value)], index: &HashMap<String, usize>) -> Result<u64, GgufError> {
    let Some(&i) = index.get(ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    match entries[i].1 {
        Value::U32(value) if value.is_power_of_two() => Ok(value.into()),
        Value::U32(value) => Err(GgufError::BadAlignment { value: value.into() }),
        ref other => {
            Err(GgufError::WrongType { key: ALIGNMENT_KEY.to_owned(), expected: "u32", found: other.type_name() })
        }
    }
}
