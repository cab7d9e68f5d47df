//! [`GgufWriter`]: GGUF v3 files written in one pass, tensor data streamed.
//!
//! A GGUF header names every tensor's offset before any data, and the offsets follow from the
//! sizes alone, so the header is complete once the tensors' names, shapes and types are known.
//! The data is then asked for one tensor at a time, so a converter never holds more than the
//! tensor it is producing.

use std::io::{self, Write};

use crate::metadata::type_id;
use crate::{Array, GgmlType, Value, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_DIMS};

/// One tensor as the header declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
}

impl TensorSpec {
    /// Bytes of the tensor's data, or `None` for a shape the type cannot hold (a row that is
    /// not whole blocks, no dimensions, more than four, or a size that overflows).
    pub fn data_size(&self) -> Option<u64> {
        if self.dims.is_empty() || self.dims.len() > MAX_DIMS {
            return None;
        }
        if self.dims[0] % self.ggml_type.block_size() as u64 != 0 {
            return None;
        }
        let n = self.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))?;
        self.ggml_type.bytes_for(n)
    }
}

/// Metadata and tensor declarations of a GGUF file to be written.
#[derive(Debug, Clone, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorSpec>,
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Sets `key` to `value`: in place if the key is present, else at the end.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.metadata.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.metadata.push((key, value)),
        }
    }

    /// Removes `key` if present.
    pub fn remove(&mut self, key: &str) {
        self.metadata.retain(|(k, _)| k != key);
    }

    /// The metadata set so far, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// Declares the next tensor. Its data is asked for by [`Self::write`] in this order.
    pub fn add_tensor(&mut self, spec: TensorSpec) -> io::Result<()> {
        if spec.data_size().is_none() {
            return Err(invalid_input(format!(
                "tensor '{}': shape {:?} cannot be stored as {}",
                spec.name, spec.dims, spec.ggml_type
            )));
        }
        if self.tensors.iter().any(|t| t.name == spec.name) {
            return Err(invalid_input(format!("tensor '{}' is declared twice", spec.name)));
        }
        self.tensors.push(spec);
        Ok(())
    }

    /// The tensors declared so far, in file order.
    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    fn alignment(&self) -> io::Result<u64> {
        match self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, Value::U32(a))) if a.is_power_of_two() => Ok((*a).into()),
            Some((_, v)) => Err(invalid_input(format!("{ALIGNMENT_KEY} must be a u32 power of two, not {v}"))),
        }
    }

    /// Writes the file to `out`: the header, then each tensor's data as `data(i, sink)`
    /// writes it (exactly the declared size, else an error), each padded to the alignment.
    /// Returns the bytes written.
    pub fn write<W: Write>(
        &self,
        out: W,
        mut data: impl FnMut(usize, &mut dyn Write) -> io::Result<()>,
    ) -> io::Result<u64> {
        let alignment = self.alignment()?;
        let mut out = Counting { inner: out, written: 0 };
        let mut header = Vec::new();
        header.extend_from_slice(b"GGUF");
        put_u32(&mut header, 3);
        put_u64(&mut header, self.tensors.len() as u64);
        put_u64(&mut header, self.metadata.len() as u64);
        for (key, value) in &self.metadata {
            put_str(&mut header, key);
            put_u32(&mut header, value_type(value));
            put_value(&mut header, value);
        }
        let mut offset = 0u64;
        let mut sizes = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            put_str(&mut header, &t.name);
            put_u32(&mut header, t.dims.len() as u32);
            for &d in &t.dims {
                put_u64(&mut header, d);
            }
            put_u32(&mut header, t.ggml_type.id());
            put_u64(&mut header, offset);
            let size = t.data_size().expect("checked when declared");
            sizes.push(size);
            offset = (offset + size).next_multiple_of(alignment);
        }
        out.write_all(&header)?;
        pad(&mut out, alignment)?;
        for (i, (t, &size)) in self.tensors.iter().zip(&sizes).enumerate() {
            let start = out.written;
            data(i, &mut out)?;
            let wrote = out.written - start;
            if wrote != size {
                return Err(invalid_input(format!(
                    "tensor '{}': {wrote} bytes of data given, {size} declared",
                    t.name
                )));
            }
            pad(&mut out, alignment)?;
        }
        out.flush()?;
        Ok(out.written)
    }
}

struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad<W: Write>(out: &mut Counting<W>, alignment: u64) -> io::Result<()> {
    let n = out.written.next_multiple_of(alignment) - out.written;
    out.write_all(&vec![0u8; n as usize])
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u64(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => type_id::U8,
        Value::I8(_) => type_id::I8,
        Value::U16(_) => type_id::U16,
        Value::I16(_) => type_id::I16,
        Value::U32(_) => type_id::U32,
        Value::I32(_) => type_id::I32,
        Value::U64(_) => type_id::U64,
        Value::I64(_) => type_id::I64,
        Value::F32(_) => type_id::F32,
        Value::F64(_) => type_id::F64,
        Value::Bool(_) => type_id::BOOL,
        Value::String(_) => type_id::STRING,
        Value::Array(_) => type_id::ARRAY,
    }
}

fn put_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => buf.push(*x),
        Value::I8(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => put_u32(buf, *x),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => put_u64(buf, *x),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => buf.push(u8::from(*x)),
        Value::String(s) => put_str(buf, s),
        Value::Array(a) => put_array(buf, a),
    }
}

/// An array body: element type, count, elements.
fn put_array(buf: &mut Vec<u8>, a: &Array) {
    fn each<T>(buf: &mut Vec<u8>, elem_type: u32, items: &[T], mut put: impl FnMut(&mut Vec<u8>, &T)) {
        put_u32(buf, elem_type);
        put_u64(buf, items.len() as u64);
        for item in items {
            put(buf, item);
        }
    }
    match a {
        Array::U8(v) => each(buf, type_id::U8, v, |b, x| b.push(*x)),
        Array::I8(v) => each(buf, type_id::I8, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Array::U16(v) => each(buf, type_id::U16, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Array::I16(v) => each(buf, type_id::I16, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Array::U32(v) => each(buf, type_id::U32, v, |b, x| put_u32(b, *x)),
        Array::I32(v) => each(buf, type_id::I32, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Array::U64(v) => each(buf, type_id::U64, v, |b, x| put_u64(b, *x)),
        Array::I64(v) => each(buf, type_id::I64, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Array::F32(v) => each(buf, type_id::F32, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Array::F64(v) => each(buf, type_id::F64, v, |b, x| b.extend_from_slice(&x.to_le_bytes())),
        Array::Bool(v) => each(buf, type_id::BOOL, v, |b, x| b.push(u8::from(*x))),
        Array::String(v) => each(buf, type_id::STRING, v, |b, s| put_str(b, s)),
        Array::Array(v) => each(buf, type_id::ARRAY, v, put_array),
    }
}
