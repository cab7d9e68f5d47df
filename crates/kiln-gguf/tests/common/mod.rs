//! A small GGUF writer for synthesising test files.
//!
//! It is deliberately independent of the reader: value type ids and the layout rules are
//! written out here again from the format description, so a shared misunderstanding cannot
//! make a round trip pass. It can also write things a valid writer never would (wrong
//! counts, raw entry bytes, arbitrary tensor fields) so tests can aim at each check.

#![allow(dead_code)]

use kiln_gguf::{Array, GgmlType, Value};

pub fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A GGUF string: u64 length, then the bytes (not necessarily UTF-8).
pub fn put_str(buf: &mut Vec<u8>, s: impl AsRef<[u8]>) {
    let s = s.as_ref();
    put_u64(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

/// The GGUF type id of a value.
pub fn value_type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

/// The GGUF type id of an array's elements.
pub fn array_elem_type_id(a: &Array) -> u32 {
    match a {
        Array::U8(_) => 0,
        Array::I8(_) => 1,
        Array::U16(_) => 2,
        Array::I16(_) => 3,
        Array::U32(_) => 4,
        Array::I32(_) => 5,
        Array::F32(_) => 6,
        Array::Bool(_) => 7,
        Array::String(_) => 8,
        Array::Array(_) => 9,
        Array::U64(_) => 10,
        Array::I64(_) => 11,
        Array::F64(_) => 12,
    }
}

/// A value's payload, without its type id.
pub fn put_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => buf.push(*x),
        Value::I8(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => buf.push(u8::from(*x)),
        Value::String(s) => put_str(buf, s),
        Value::Array(a) => put_array(buf, a),
    }
}

/// An array body: element type id, count, elements.
pub fn put_array(buf: &mut Vec<u8>, a: &Array) {
    put_u32(buf, array_elem_type_id(a));
    put_u64(buf, a.len() as u64);
    fn each<T: Clone>(buf: &mut Vec<u8>, items: &[T], wrap: impl Fn(T) -> Value) {
        for item in items {
            put_value(buf, &wrap(item.clone()));
        }
    }
    match a {
        Array::U8(v) => each(buf, v, Value::U8),
        Array::I8(v) => each(buf, v, Value::I8),
        Array::U16(v) => each(buf, v, Value::U16),
        Array::I16(v) => each(buf, v, Value::I16),
        Array::U32(v) => each(buf, v, Value::U32),
        Array::I32(v) => each(buf, v, Value::I32),
        Array::U64(v) => each(buf, v, Value::U64),
        Array::I64(v) => each(buf, v, Value::I64),
        Array::F32(v) => each(buf, v, Value::F32),
        Array::F64(v) => each(buf, v, Value::F64),
        Array::Bool(v) => each(buf, v, Value::Bool),
        Array::String(v) => each(buf, v, Value::String),
        Array::Array(v) => {
            for inner in v {
                put_array(buf, inner);
            }
        }
    }
}

/// One tensor descriptor, with every field settable (including invalid ones).
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: Vec<u8>,
    /// Written as the n_dims field; defaults to `dims.len()`.
    pub n_dims: Option<u32>,
    pub dims: Vec<u64>,
    pub type_id: u32,
    /// The data, placed at the next aligned position after the previous tensor's.
    pub data: Vec<u8>,
    /// Written as the offset field instead of the position the data was placed at.
    pub offset: Option<u64>,
}

enum Entry {
    Kv(String, Value),
    Raw(Vec<u8>),
}

/// Builds a GGUF file. Defaults: magic `GGUF`, version 3, counts from the contents, data
/// aligned to `general.alignment` if set as a u32, else 32. The file ends right after the last
/// tensor's data (no trailing padding), so any shorter prefix of it is truncated.
pub struct GgufBuilder {
    pub magic: [u8; 4],
    pub version: u32,
    pub tensor_count: Option<u64>,
    pub kv_count: Option<u64>,
    /// Alignment used to place data, overriding the one implied by the metadata.
    pub layout_alignment: Option<u64>,
    entries: Vec<Entry>,
    tensors: Vec<TensorSpec>,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufBuilder {
    pub fn new() -> Self {
        GgufBuilder {
            magic: *b"GGUF",
            version: 3,
            tensor_count: None,
            kv_count: None,
            layout_alignment: None,
            entries: Vec::new(),
            tensors: Vec::new(),
        }
    }

    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    pub fn kv(mut self, key: &str, value: Value) -> Self {
        self.entries.push(Entry::Kv(key.to_owned(), value));
        self
    }

    /// A whole entry as raw bytes (key, type id and payload), for malformed entries.
    pub fn raw_kv(mut self, bytes: Vec<u8>) -> Self {
        self.entries.push(Entry::Raw(bytes));
        self
    }

    /// A well-formed tensor.
    pub fn tensor(self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> Self {
        self.tensor_spec(TensorSpec {
            name: name.as_bytes().to_vec(),
            n_dims: None,
            dims: dims.to_vec(),
            type_id: ty.id(),
            data,
            offset: None,
        })
    }

    pub fn tensor_spec(mut self, spec: TensorSpec) -> Self {
        self.tensors.push(spec);
        self
    }

    fn alignment(&self) -> u64 {
        if let Some(a) = self.layout_alignment {
            return a;
        }
        for entry in &self.entries {
            if let Entry::Kv(key, Value::U32(a)) = entry {
                if key == "general.alignment" {
                    return u64::from(*a);
                }
            }
        }
        32
    }

    pub fn build(&self) -> Vec<u8> {
        let align = |n: u64, a: u64| n.div_ceil(a) * a;
        let alignment = self.alignment();
        let mut buf = Vec::new();
        buf.extend_from_slice(&self.magic);
        put_u32(&mut buf, self.version);
        put_u64(&mut buf, self.tensor_count.unwrap_or(self.tensors.len() as u64));
        put_u64(&mut buf, self.kv_count.unwrap_or(self.entries.len() as u64));
        for entry in &self.entries {
            match entry {
                Entry::Kv(key, value) => {
                    put_str(&mut buf, key);
                    put_u32(&mut buf, value_type_id(value));
                    put_value(&mut buf, value);
                }
                Entry::Raw(bytes) => buf.extend_from_slice(bytes),
            }
        }
        let mut placed = Vec::new();
        let mut next = 0u64;
        for t in &self.tensors {
            let at = align(next, alignment);
            placed.push(at);
            next = at + t.data.len() as u64;
        }
        for (t, &at) in self.tensors.iter().zip(&placed) {
            put_str(&mut buf, &t.name);
            put_u32(&mut buf, t.n_dims.unwrap_or(t.dims.len() as u32));
            for &d in &t.dims {
                put_u64(&mut buf, d);
            }
            put_u32(&mut buf, t.type_id);
            put_u64(&mut buf, t.offset.unwrap_or(at));
        }
        if !self.tensors.is_empty() {
            let data_start = align(buf.len() as u64, alignment);
            buf.resize(data_start as usize, 0);
            for (t, &at) in self.tensors.iter().zip(&placed) {
                buf.resize((data_start + at) as usize, 0);
                buf.extend_from_slice(&t.data);
            }
        }
        buf
    }
}

/// Bytes `0, 1, 2, …` (wrapping), so each tensor's data is recognisable.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A small valid file exercising every value type and a few tensor types.
pub fn sample_file() -> Vec<u8> {
    sample_builder().build()
}

pub fn sample_builder() -> GgufBuilder {
    GgufBuilder::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("general.name", Value::String("tiny ✓".into()))
        .kv("llama.block_count", Value::U32(2))
        .kv("llama.context_length", Value::U64(2048))
        .kv("llama.rope.freq_base", Value::F32(10000.0))
        .kv("llama.attention.layer_norm_rms_epsilon", Value::F64(1e-5))
        .kv("x.i8", Value::I8(-8))
        .kv("x.u8", Value::U8(8))
        .kv("x.i16", Value::I16(-16))
        .kv("x.u16", Value::U16(16))
        .kv("x.i32", Value::I32(-32))
        .kv("x.i64", Value::I64(-64))
        .kv("x.bool", Value::Bool(true))
        .kv("tokenizer.ggml.tokens", Value::Array(Array::String(vec!["<s>".into(), "a".into(), "".into()])))
        .kv("tokenizer.ggml.scores", Value::Array(Array::F32(vec![0.0, -1.5, 2.25])))
        .kv("tokenizer.ggml.token_type", Value::Array(Array::I32(vec![3, 1, 1])))
        .kv("x.nested", Value::Array(Array::Array(vec![Array::U8(vec![1, 2]), Array::Bool(vec![false])])))
        .tensor("token_embd.weight", &[32, 3], GgmlType::Q4_0, pattern(3 * 18, 1))
        .tensor("output_norm.weight", &[5], GgmlType::F32, pattern(20, 2))
        .tensor("blk.0.attn_q.weight", &[4, 2, 1, 1], GgmlType::F16, pattern(16, 3))
}
