//! Safetensors checkpoints: one file or shards named by `model.safetensors.index.json`,
//! memory-mapped, tensors read as f32.
//!
//! A file is an 8-byte little-endian header length, a JSON header
//! (`{name: {dtype, shape, data_offsets: [begin, end]}}`, plus `__metadata__`), then the data.
//! The header is checked against the file's size before anything is read, and each tensor's
//! byte range against its dtype and shape.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use kiln_gguf::GgmlType;
use serde::Deserialize;

use crate::error::ConvertError;

/// Header lengths beyond this are refused rather than read (real headers are a few MB).
const MAX_HEADER_LEN: u64 = 100 << 20;

/// A tensor's element type as the header names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    /// Anything else (`I64` position ids, `F8_E4M3`, …): listed, refused only when used.
    Other(String),
}

impl Dtype {
    fn parse(s: &str) -> Dtype {
        match s {
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            other => Dtype::Other(other.to_string()),
        }
    }

    /// Bytes per element, for the types whose size the header check needs.
    fn size(&self) -> Option<u64> {
        match self {
            Dtype::F32 => Some(4),
            Dtype::F16 | Dtype::BF16 => Some(2),
            Dtype::Other(s) => match s.as_str() {
                "F64" | "I64" | "U64" => Some(8),
                "I32" | "U32" => Some(4),
                "I16" | "U16" => Some(2),
                "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => Some(1),
                _ => None,
            },
        }
    }

    /// The ggml type holding these values unchanged.
    pub fn ggml_type(&self) -> Option<GgmlType> {
        match self {
            Dtype::F32 => Some(GgmlType::F32),
            Dtype::F16 => Some(GgmlType::F16),
            Dtype::BF16 => Some(GgmlType::BF16),
            Dtype::Other(_) => None,
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dtype::F32 => f.write_str("F32"),
            Dtype::F16 => f.write_str("F16"),
            Dtype::BF16 => f.write_str("BF16"),
            Dtype::Other(s) => f.write_str(s),
        }
    }
}

/// One tensor's header entry.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub dtype: Dtype,
    /// PyTorch order: the last dimension is contiguous.
    pub shape: Vec<u64>,
    /// Byte range within the file.
    start: usize,
    end: usize,
    file: usize,
}

#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// One mapped safetensors file.
struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// Every tensor of a checkpoint, across its shards.
pub struct Checkpoint {
    files: Vec<MappedFile>,
    tensors: BTreeMap<String, TensorEntry>,
}

fn corrupt(path: &Path, message: impl Into<String>) -> ConvertError {
    ConvertError::Safetensors { path: path.to_path_buf(), message: message.into() }
}

/// Parses the header of the file `bytes` (read from `path`), checking every entry against the
/// data that follows it.
fn parse_header(path: &Path, bytes: &[u8], file: usize) -> Result<Vec<(String, TensorEntry)>, ConvertError> {
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt(path, format!("{} bytes is too short for the header length", bytes.len())))?;
    let header_len = u64::from_le_bytes(len_bytes);
    let available = bytes.len() as u64 - 8;
    if header_len > available || header_len > MAX_HEADER_LEN {
        return Err(corrupt(
            path,
            format!("the header claims {header_len} bytes but the file has {available} after the length (truncated?)"),
        ));
    }
    let header = &bytes[8..8 + header_len as usize];
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| corrupt(path, format!("the header is not JSON: {e}")))?;
    let data_start = 8 + header_len;
    let data_len = bytes.len() as u64 - data_start;
    let mut entries = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        if name == "__metadata__" {
            continue;
        }
        let entry: RawEntry =
            serde_json::from_value(value).map_err(|e| corrupt(path, format!("header entry {name}: {e}")))?;
        let [begin, end] = entry.data_offsets;
        if begin > end || end > data_len {
            return Err(corrupt(
                path,
                format!("tensor {name}: data [{begin}, {end}) lies outside the {data_len} data bytes (truncated?)"),
            ));
        }
        let dtype = Dtype::parse(&entry.dtype);
        let n_elements = entry.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let expected = dtype.size().and_then(|s| n_elements?.checked_mul(s));
        if let Some(expected) = expected {
            if expected != end - begin {
                return Err(corrupt(
                    path,
                    format!(
                        "tensor {name}: {} {dtype} elements need {expected} bytes, the header gives {}",
                        n_elements.unwrap_or(0),
                        end - begin
                    ),
                ));
            }
        }
        let (start, end) = ((data_start + begin) as usize, (data_start + end) as usize);
        entries.push((name, TensorEntry { dtype, shape: entry.shape, start, end, file }));
    }
    Ok(entries)
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

/// The safetensors files of the model directory `dir`: the shards the index names, else every
/// `*.safetensors` file.
pub(crate) fn shard_paths(dir: &Path) -> Result<Vec<PathBuf>, ConvertError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(ConvertError::io(&index))?;
        let parsed: ShardIndex = serde_json::from_str(&text)
            .map_err(|e| ConvertError::Json { path: index.clone(), message: e.to_string() })?;
        let mut files: Vec<&String> = parsed.weight_map.values().collect();
        files.sort();
        files.dedup();
        return files
            .into_iter()
            .map(|f| {
                crate::paths::join_inside(dir, f).ok_or_else(|| ConvertError::Json {
                    path: index.clone(),
                    message: format!("shard {f:?} is not a file inside the model directory"),
                })
            })
            .collect();
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(ConvertError::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ConvertError::MissingFile {
            path: dir.join("model.safetensors"),
            why: "no safetensors weights found",
        });
    }
    Ok(files)
}

impl Checkpoint {
    /// Maps every shard of the model in `dir` and reads their headers.
    pub fn open(dir: &Path) -> Result<Checkpoint, ConvertError> {
        let mut files = Vec::new();
        let mut tensors = BTreeMap::new();
        for (i, path) in shard_paths(dir)?.into_iter().enumerate() {
            let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    ConvertError::MissingFile { path: path.clone(), why: "the shard index names it" }
                }
                _ => ConvertError::Io { path: path.clone(), source: e },
            })?;
            let len = file.metadata().map_err(ConvertError::io(&path))?.len();
            // SAFETY: read-only map of a checkpoint nobody writes while it is converted.
            let map = if len == 0 {
                None
            } else {
                Some(unsafe { memmap2::Mmap::map(&file) }.map_err(ConvertError::io(&path))?)
            };
            let mapped = MappedFile { map };
            for (name, entry) in parse_header(&path, mapped.bytes(), i)? {
                if tensors.insert(name.clone(), entry).is_some() {
                    return Err(corrupt(&path, format!("tensor {name} is also in another shard")));
                }
            }
            files.push(mapped);
        }
        Ok(Checkpoint { files, tensors })
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn entry(&self, name: &str) -> Result<&TensorEntry, ConvertError> {
        self.tensors.get(name).ok_or_else(|| ConvertError::MissingTensor(name.to_string()))
    }

    /// The tensor's shape (PyTorch order).
    pub fn shape(&self, name: &str) -> Result<&[u64], ConvertError> {
        Ok(&self.entry(name)?.shape)
    }

    /// The ggml type that holds the tensor as stored; an error for dtypes that cannot be
    /// imported.
    pub fn stored_type(&self, name: &str) -> Result<GgmlType, ConvertError> {
        let entry = self.entry(name)?;
        entry
            .dtype
            .ggml_type()
            .ok_or_else(|| ConvertError::UnsupportedDtype { name: name.to_string(), dtype: entry.dtype.to_string() })
    }

    /// The tensor's values as f32 (exact for all three float dtypes).
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, ConvertError> {
        let ty = self.stored_type(name)?;
        let entry = self.entry(name)?;
        let bytes = &self.files[entry.file].bytes()[entry.start..entry.end];
        Ok(match ty {
            GgmlType::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            GgmlType::BF16 => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            _ => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_testdata::TempDir;

    /// A safetensors file with the given header JSON and `data_len` zero bytes of data.
    fn file_with(header: &str, data_len: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data_len, 0);
        bytes
    }

    fn open_one(bytes: &[u8]) -> Result<Checkpoint, ConvertError> {
        let dir = TempDir::new("safetensors");
        std::fs::create_dir_all(&dir.0).unwrap();
        std::fs::write(dir.0.join("model.safetensors"), bytes).unwrap();
        Checkpoint::open(&dir.0)
    }

    #[test]
    fn reads_each_float_dtype_as_f32() {
        let header = r#"{"__metadata__":{"format":"pt"},
            "a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
            "b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},
            "c":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]},
            "ids":{"dtype":"I64","shape":[1],"data_offsets":[16,24]}}"#;
        let mut bytes = file_with(header, 0);
        for v in [1.5f32, -2.0] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0.25f32, 3.0] {
            bytes.extend_from_slice(&f16::from_f32(v).to_le_bytes());
        }
        for v in [-0.5f32, 7.0] {
            bytes.extend_from_slice(&bf16::from_f32(v).to_le_bytes());
        }
        bytes.extend_from_slice(&5i64.to_le_bytes());
        let ckpt = open_one(&bytes).unwrap();
        assert_eq!(ckpt.names().collect::<Vec<_>>(), ["a", "b", "c", "ids"]);
        assert_eq!(ckpt.read_f32("a").unwrap(), [1.5, -2.0]);
        assert_eq!(ckpt.read_f32("b").unwrap(), [0.25, 3.0]);
        assert_eq!(ckpt.read_f32("c").unwrap(), [-0.5, 7.0]);
        assert_eq!(ckpt.shape("b").unwrap(), [1, 2]);
        assert_eq!(ckpt.stored_type("c").unwrap(), GgmlType::BF16);
        let err = ckpt.read_f32("ids").unwrap_err().to_string();
        assert!(err.contains("ids is stored as I64"), "{err}");
        assert!(ckpt.read_f32("nope").unwrap_err().to_string().contains("nope is missing"));
    }

    #[test]
    fn corrupt_and_truncated_headers_are_errors() {
        let entry = r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#;
        let good = file_with(entry, 16);
        assert!(open_one(&good).is_ok());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..5].to_vec(), "too short for the header length"),
            (good[..20].to_vec(), "the header claims"),
            (good[..good.len() - 1].to_vec(), "outside the 15 data bytes"),
            (file_with("{not json", 0), "not JSON"),
            (file_with(r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#, 16), "need 12 bytes"),
            (file_with(r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}}"#, 16), "outside"),
            (file_with(r#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, 4), "missing field `shape`"),
        ];
        for (bytes, want) in cases {
            let err = open_one(&bytes).err().expect(want).to_string();
            assert!(err.contains("not a valid safetensors file") && err.contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn shards_follow_the_index() {
        let dir = TempDir::new("safetensors-shards");
        std::fs::create_dir_all(&dir.0).unwrap();
        let one =
            |name: &str| file_with(&format!(r#"{{"{name}":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#), 4);
        std::fs::write(dir.0.join("model-00001-of-00002.safetensors"), one("x")).unwrap();
        std::fs::write(dir.0.join("model-00002-of-00002.safetensors"), one("y")).unwrap();
        std::fs::write(dir.0.join("stray.safetensors"), one("z")).unwrap();
        let index = r#"{"metadata":{},"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}}"#;
        std::fs::write(dir.0.join("model.safetensors.index.json"), index).unwrap();
        let ckpt = Checkpoint::open(&dir.0).unwrap();
        assert_eq!(ckpt.names().collect::<Vec<_>>(), ["x", "y"]);

        std::fs::write(dir.0.join("model.safetensors.index.json"), r#"{"weight_map":{"x":"../outside.safetensors"}}"#)
            .unwrap();
        let err = Checkpoint::open(&dir.0).err().unwrap().to_string();
        assert!(err.contains("shard \"../outside.safetensors\" is not a file inside the model directory"), "{err}");

        std::fs::write(dir.0.join("model.safetensors.index.json"), index).unwrap();
        std::fs::remove_file(dir.0.join("model-00002-of-00002.safetensors")).unwrap();
        let err = Checkpoint::open(&dir.0).err().unwrap().to_string();
        assert!(err.contains("model-00002-of-00002.safetensors is missing"), "{err}");
    }

    #[test]
    fn a_directory_without_weights_is_an_error() {
        let dir = TempDir::new("safetensors-none");
        std::fs::create_dir_all(&dir.0).unwrap();
        let err = Checkpoint::open(&dir.0).err().unwrap().to_string();
        assert!(err.contains("no safetensors weights found"), "{err}");
    }
}
