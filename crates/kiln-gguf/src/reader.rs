//! A bounds-checked little-endian cursor over the file's bytes.
//!
//! Every read goes through [`Reader::take`], which checks the remaining length with
//! overflow-free arithmetic, so no input can make the parser index out of bounds. Reads fail
//! with a [`Fault`], which says what went wrong but not where in the file's structure; the
//! caller knows that and turns the fault into a [`GgufError`] with [`Fault::at`].

use crate::GgufError;

/// What went wrong in a low-level read, before the caller adds its location.
#[derive(Debug)]
pub(crate) enum FaultKind {
    Truncated { offset: usize, needed: u64 },
    CountTooLarge { count: u64, unit: &'static str, min_bytes: usize, remaining: usize },
    InvalidUtf8 { offset: usize },
    UnknownValueType { type_id: u32, offset: usize },
    InvalidBool { value: u8, offset: usize },
    NestingTooDeep { max: usize },
}

/// A read failure, plus the array element indices (innermost first) it happened inside.
#[derive(Debug)]
pub(crate) struct Fault {
    kind: FaultKind,
    elements: Vec<usize>,
}

impl From<FaultKind> for Fault {
    fn from(kind: FaultKind) -> Self {
        Fault { kind, elements: Vec::new() }
    }
}

impl Fault {
    /// Records that this fault happened inside element `index` of an array.
    pub(crate) fn in_element(mut self, index: usize) -> Self {
        self.elements.push(index);
        self
    }

    /// Turns the fault into a public error located at `location` (e.g. `tensor #3 ('x')`).
    pub(crate) fn at(self, location: impl Into<String>, file_size: u64) -> GgufError {
        let mut location = location.into();
        if !self.elements.is_empty() {
            location.push_str(", element ");
            for index in self.elements.iter().rev() {
                location.push_str(&format!("[{index}]"));
            }
        }
        match self.kind {
            FaultKind::Truncated { offset, needed } => {
                GgufError::Truncated { location, offset: offset as u64, needed, file_size }
            }
            FaultKind::CountTooLarge { count, unit, min_bytes, remaining } => GgufError::CountTooLarge {
                location,
                count,
                unit,
                min_bytes: min_bytes as u64,
                remaining: remaining as u64,
            },
            FaultKind::InvalidUtf8 { offset } => GgufError::InvalidUtf8 { location, offset: offset as u64 },
            FaultKind::UnknownValueType { type_id, offset } => {
                GgufError::UnknownValueType { location, type_id, offset: offset as u64 }
            }
            FaultKind::InvalidBool { value, offset } => {
                GgufError::InvalidBool { location, value, offset: offset as u64 }
            }
            FaultKind::NestingTooDeep { max } => GgufError::NestingTooDeep { location, max },
        }
    }
}

/// A cursor over a byte slice. `pos` is an absolute offset into the whole file, so error
/// offsets can be looked up directly in a hex dump.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

macro_rules! read_le {
    ($($name:ident -> $ty:ty),* $(,)?) => {$(
        pub(crate) fn $name(&mut self) -> Result<$ty, Fault> {
            let mut bytes = [0u8; std::mem::size_of::<$ty>()];
            bytes.copy_from_slice(self.take(std::mem::size_of::<$ty>())?);
            Ok(<$ty>::from_le_bytes(bytes))
        }
    )*};
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The absolute offset of the next byte to be read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the cursor.
    pub(crate) fn remaining(&self) -> usize {
        // `pos` only ever advances by lengths that `take` has checked, so it never exceeds
        // the buffer; saturating keeps this obviously safe anyway.
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, or a truncation fault naming the offset and the shortfall.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        if n > self.remaining() {
            return Err(FaultKind::Truncated { offset: self.pos, needed: n as u64 }.into());
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    read_le! {
        u8 -> u8, i8 -> i8, u16 -> u16, i16 -> i16, u32 -> u32, i32 -> i32,
        u64 -> u64, i64 -> i64, f32 -> f32, f64 -> f64,
    }

    /// A bool stored as one byte; anything but 0 or 1 is corruption rather than "true".
    pub(crate) fn bool(&mut self) -> Result<bool, Fault> {
        let offset = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(FaultKind::InvalidBool { value, offset }.into()),
        }
    }

    /// A GGUF string: u64 byte length, then that many UTF-8 bytes. The length is checked
    /// against the remaining bytes before anything is allocated.
    pub(crate) fn string(&mut self) -> Result<String, Fault> {
        let len_offset = self.pos;
        let len = self.u64()?;
        let len = match usize::try_from(len) {
            Ok(len) if len <= self.remaining() => len,
            _ => return Err(FaultKind::Truncated { offset: self.pos, needed: len }.into()),
        };
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(FaultKind::InvalidUtf8 { offset: len_offset }.into()),
        }
    }

    /// Checks that `count` items of at least `min_bytes` each can fit in what remains, and
    /// returns the count as a `usize` that is then safe to allocate for.
    pub(crate) fn check_count(&self, count: u64, min_bytes: usize, unit: &'static str) -> Result<usize, Fault> {
        let remaining = self.remaining();
        match usize::try_from(count) {
            Ok(n) if n.checked_mul(min_bytes).is_some_and(|total| total <= remaining) => Ok(n),
            _ => Err(FaultKind::CountTooLarge { count, unit, min_bytes, remaining }.into()),
        }
    }

    /// Reads `count` items with `read_one`, after checking they can fit (each takes at least
    /// `min_bytes`), tagging any fault with the element index.
    pub(crate) fn read_vec<T>(
        &mut self,
        count: u64,
        min_bytes: usize,
        unit: &'static str,
        mut read_one: impl FnMut(&mut Self) -> Result<T, Fault>,
    ) -> Result<Vec<T>, Fault> {
        let n = self.check_count(count, min_bytes, unit)?;
        let mut items = Vec::with_capacity(n);
        for index in 0..n {
            items.push(read_one(self).map_err(|fault| fault.in_element(index))?);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_stops_at_the_end() {
        let bytes = [1u8, 0, 0, 0, 0xff];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u32().ok(), Some(1));
        assert_eq!(r.pos(), 4);
        assert!(matches!(r.u16().map_err(|f| f.kind), Err(FaultKind::Truncated { offset: 4, needed: 2 })));
        // A failed read consumes nothing.
        assert_eq!(r.u8().ok(), Some(0xff));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn huge_string_length_is_rejected_without_allocating() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let mut r = Reader::new(&bytes);
        assert!(matches!(r.string().map_err(|f| f.kind), Err(FaultKind::Truncated { offset: 8, needed: u64::MAX })));
    }

    #[test]
    fn counts_are_checked_against_remaining_bytes() {
        let bytes = [0u8; 16];
        let r = Reader::new(&bytes);
        assert_eq!(r.check_count(4, 4, "x").ok(), Some(4));
        assert!(r.check_count(5, 4, "x").is_err());
        assert!(r.check_count(1 << 62, 8, "x").is_err());
        assert!(r.check_count(u64::MAX, 1, "x").is_err());
    }

    #[test]
    fn element_indices_are_reported_outermost_first() {
        let fault = Fault::from(FaultKind::NestingTooDeep { max: 1 }).in_element(5).in_element(2);
        let err = fault.at("metadata key #0 ('k')", 10);
        assert_eq!(err.to_string(), "metadata key #0 ('k'), element [2][5]: arrays are nested more than 1 deep");
    }
}
