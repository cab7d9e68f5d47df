//! Decoding of the metadata (key/value) section.

use std::collections::HashMap;

use crate::reader::{Fault, FaultKind, Reader};
use crate::{Array, GgufError, Value};

/// GGUF value type ids, as written in the file.
pub(crate) mod type_id {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// How deeply arrays may nest. Real files never nest arrays at all; the cap bounds the
/// recursion a hostile file can cause.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// The fewest bytes one key/value entry can take: an empty-length key (8), a type id (4) and
/// a one-byte value. Used to reject absurd entry counts before allocating for them.
pub(crate) const MIN_KV_BYTES: usize = 8 + 4 + 1;

/// Reads one value of type `type_id`, whose id was read at `type_offset`.
fn read_value(r: &mut Reader<'_>, type_id: u32, type_offset: usize) -> Result<Value, Fault> {
    Ok(match type_id {
        type_id::U8 => Value::U8(r.u8()?),
        type_id::I8 => Value::I8(r.i8()?),
        type_id::U16 => Value::U16(r.u16()?),
        type_id::I16 => Value::I16(r.i16()?),
        type_id::U32 => Value::U32(r.u32()?),
        type_id::I32 => Value::I32(r.i32()?),
        type_id::U64 => Value::U64(r.u64()?),
        type_id::I64 => Value::I64(r.i64()?),
        type_id::F32 => Value::F32(r.f32()?),
        type_id::F64 => Value::F64(r.f64()?),
        type_id::BOOL => Value::Bool(r.bool()?),
        type_id::STRING => Value::String(r.string()?),
        type_id::ARRAY => Value::Array(read_array(r, 1)?),
        type_id => return Err(FaultKind::UnknownValueType { type_id, offset: type_offset }.into()),
    })
}

/// Reads an array body (element type, count, elements). `depth` counts this array.
fn read_array(r: &mut Reader<'_>, depth: usize) -> Result<Array, Fault> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(FaultKind::NestingTooDeep { max: MAX_ARRAY_DEPTH }.into());
    }
    let type_offset = r.pos();
    let elem_type = r.u32()?;
    let count = r.u64()?;
    let unit = "array elements";
    // Each arm passes the fewest bytes one element can take, so `read_vec` can reject a
    // count that cannot fit before allocating for it. Strings take at least their u64 length
    // prefix; nested arrays at least their element type id and count.
    Ok(match elem_type {
        type_id::U8 => Array::U8(r.read_vec(count, 1, unit, Reader::u8)?),
        type_id::I8 => Array::I8(r.read_vec(count, 1, unit, Reader::i8)?),
        type_id::U16 => Array::U16(r.read_vec(count, 2, unit, Reader::u16)?),
        type_id::I16 => Array::I16(r.read_vec(count, 2, unit, Reader::i16)?),
        type_id::U32 => Array::U32(r.read_vec(count, 4, unit, Reader::u32)?),
        type_id::I32 => Array::I32(r.read_vec(count, 4, unit, Reader::i32)?),
        type_id::U64 => Array::U64(r.read_vec(count, 8, unit, Reader::u64)?),
        type_id::I64 => Array::I64(r.read_vec(count, 8, unit, Reader::i64)?),
        type_id::F32 => Array::F32(r.read_vec(count, 4, unit, Reader::f32)?),
        type_id::F64 => Array::F64(r.read_vec(count, 8, unit, Reader::f64)?),
        type_id::BOOL => Array::Bool(r.read_vec(count, 1, unit, Reader::bool)?),
        type_id::STRING => Array::String(r.read_vec(count, 8, unit, Reader::string)?),
        type_id::ARRAY => Array::Array(r.read_vec(count, 4 + 8, unit, |r| read_array(r, depth + 1))?),
        type_id => return Err(FaultKind::UnknownValueType { type_id, offset: type_offset }.into()),
    })
}

/// The decoded metadata section: entries in file order plus a key index.
pub(crate) struct Metadata {
    pub(crate) entries: Vec<(String, Value)>,
    pub(crate) index: HashMap<String, usize>,
}

/// Reads `count` key/value entries. `count` has already been checked against the file size.
pub(crate) fn read_metadata(r: &mut Reader<'_>, count: usize, file_size: u64) -> Result<Metadata, GgufError> {
    let mut entries = Vec::with_capacity(count);
    let mut index = HashMap::with_capacity(count);
    for i in 0..count {
        let key = r.string().map_err(|f| f.at(format!("metadata key #{i}"), file_size))?;
        if key.is_empty() {
            return Err(GgufError::EmptyKey { index: i as u64 });
        }
        if let Some(&first) = index.get(&key) {
            return Err(GgufError::DuplicateKey { index: i as u64, key, first: first as u64 });
        }
        let value = (|| {
            let type_offset = r.pos();
            let type_id = r.u32()?;
            read_value(r, type_id, type_offset)
        })()
        .map_err(|f| f.at(format!("metadata key #{i} ('{key}')"), file_size))?;
        index.insert(key.clone(), i);
        entries.push((key, value));
    }
    Ok(Metadata { entries, index })
}
