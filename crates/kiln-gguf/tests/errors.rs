//! Every kind of bad file gives the right error, with a message that says where.

mod common;

use common::{pattern, put_array, put_str, put_u32, put_u64, sample_builder, sample_file};
use common::{GgufBuilder, TensorSpec};
use kiln_gguf::{Array, GgmlType, GgufError, GgufFile, Value, MAX_ARRAY_DEPTH};

fn parse(bytes: Vec<u8>) -> GgufError {
    match GgufFile::from_bytes(bytes) {
        Ok(f) => panic!("expected an error, parsed {f:?}"),
        Err(e) => e,
    }
}

fn spec(name: &str, dims: &[u64], type_id: u32, data: Vec<u8>) -> TensorSpec {
    TensorSpec { name: name.as_bytes().to_vec(), n_dims: None, dims: dims.to_vec(), type_id, data, offset: None }
}

/// Raw entry bytes: key, then everything after it as given.
fn raw_entry(key: &str, rest: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::new();
    put_str(&mut buf, key);
    rest(&mut buf);
    buf
}

#[test]
fn wrong_magic() {
    let mut bytes = sample_file();
    bytes[..4].copy_from_slice(b"GGML");
    let err = parse(bytes);
    assert!(matches!(err, GgufError::BadMagic { found } if &found == b"GGML"));
    assert!(err.to_string().contains("not a GGUF file"), "{err}");
}

#[test]
fn unsupported_versions() {
    for version in [0u32, 1, 4, 99, 0x0300_0000] {
        let err = parse(sample_builder().version(version).build());
        assert!(matches!(err, GgufError::UnsupportedVersion { version: v, .. } if v == version));
        assert!(err.to_string().contains(&format!("version {version}")), "{err}");
    }
    let v1 = parse(sample_builder().version(1).build()).to_string();
    assert!(v1.contains("no longer supported"), "{v1}");
    let swapped = parse(sample_builder().version(0x0300_0000).build()).to_string();
    assert!(swapped.contains("big-endian"), "{swapped}");
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let bytes = sample_file();
    assert!(GgufFile::from_bytes(bytes.clone()).is_ok());
    for len in 0..bytes.len() {
        match GgufFile::from_bytes(bytes[..len].to_vec()) {
            Ok(_) => panic!("prefix of {len} of {} bytes parsed", bytes.len()),
            Err(GgufError::Truncated { .. } | GgufError::CountTooLarge { .. } | GgufError::InvalidTensor { .. }) => {}
            Err(other) => panic!("prefix of {len}: unexpected error {other}"),
        }
    }
}

#[test]
fn truncated_tensor_data_names_the_tensor_and_range() {
    let bytes = sample_file();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    let last = f.tensors().last().unwrap();
    let end = f.data_offset() + last.offset + last.size;
    let err = parse(bytes[..bytes.len() - 1].to_vec()).to_string();
    assert_eq!(
        err,
        format!(
            "tensor #2 ('blk.0.attn_q.weight'): data [{}..{end}) runs past the end of the file (size {})",
            end - last.size,
            end - 1
        )
    );
}

#[test]
fn huge_header_counts_are_rejected_before_allocating() {
    let mut b = sample_builder();
    b.kv_count = Some(1 << 60);
    let err = parse(b.build());
    assert!(matches!(err, GgufError::CountTooLarge { count, .. } if count == 1 << 60), "{err}");
    assert!(err.to_string().starts_with("header: 1152921504606846976 metadata entries"), "{err}");

    let mut b = sample_builder();
    b.tensor_count = Some(u64::MAX);
    assert!(matches!(parse(b.build()), GgufError::CountTooLarge { unit: "tensor descriptors", .. }));

    // A plausible but wrong count: more entries than are present runs into the tensor infos
    // and then the end of the file, but must still fail cleanly.
    let mut b = sample_builder();
    b.kv_count = Some(18);
    parse(b.build());
}

#[test]
fn huge_array_count_is_rejected_with_its_location() {
    let entry = raw_entry("tokenizer.ggml.tokens", |buf| {
        put_u32(buf, 9);
        put_u32(buf, 8);
        put_u64(buf, 1 << 60);
    });
    let b = GgufBuilder::new().kv("a", Value::U8(1)).raw_kv(entry).kv("z", Value::U8(0));
    let err = parse(b.build());
    let msg = err.to_string();
    assert!(msg.starts_with("metadata key #1 ('tokenizer.ggml.tokens'): 1152921504606846976 array elements"), "{msg}");
    assert!(msg.contains("exceed the remaining"), "{msg}");

    for elem_type in [0u32, 3, 6, 10, 9] {
        let entry = raw_entry("k", |buf| {
            put_u32(buf, 9);
            put_u32(buf, elem_type);
            put_u64(buf, u64::MAX / 2);
        });
        let err = parse(GgufBuilder::new().raw_kv(entry).build());
        assert!(matches!(err, GgufError::CountTooLarge { .. }), "type {elem_type}: {err}");
    }
}

#[test]
fn huge_string_length_is_truncation_not_allocation() {
    let entry = raw_entry("general.name", |buf| {
        put_u32(buf, 8);
        put_u64(buf, u64::MAX);
    });
    let err = parse(GgufBuilder::new().raw_kv(entry).build());
    assert!(matches!(err, GgufError::Truncated { needed: u64::MAX, .. }), "{err}");
    assert!(err.to_string().starts_with("metadata key #0 ('general.name'): "), "{err}");

    let mut key = Vec::new();
    put_u64(&mut key, 1 << 62);
    key.extend_from_slice(b"more than enough bytes for one entry");
    let err = parse(GgufBuilder::new().raw_kv(key).build());
    assert!(err.to_string().starts_with("metadata key #0: "), "{err}");
}

#[test]
fn unknown_value_type_ids() {
    let scalar = raw_entry("k", |buf| put_u32(buf, 13));
    let err = parse(GgufBuilder::new().kv("a", Value::U8(1)).raw_kv(scalar).build());
    assert!(matches!(err, GgufError::UnknownValueType { type_id: 13, .. }), "{err}");
    assert!(err.to_string().starts_with("metadata key #1 ('k'): unknown"), "{err}");

    let elem = raw_entry("k", |buf| {
        put_u32(buf, 9);
        put_u32(buf, u32::MAX);
        put_u64(buf, 0);
    });
    let err = parse(GgufBuilder::new().raw_kv(elem).build());
    assert!(matches!(err, GgufError::UnknownValueType { type_id: u32::MAX, .. }), "{err}");
}

#[test]
fn unknown_tensor_type_id() {
    for type_id in [4u32, 5, 31, 36, 1000] {
        let b = GgufBuilder::new().tensor_spec(spec("w", &[4], type_id, vec![0; 16]));
        let err = parse(b.build());
        assert!(matches!(err, GgufError::UnknownTensorType { type_id: t, .. } if t == type_id));
        assert_eq!(err.to_string(), format!("tensor #0 ('w'): unknown ggml tensor type id {type_id}"));
    }
}

#[test]
fn invalid_utf8_is_located() {
    let bad_key = {
        let mut buf = Vec::new();
        put_str(&mut buf, b"ke\xffy");
        put_u32(&mut buf, 0);
        buf.push(0);
        buf
    };
    let err = parse(GgufBuilder::new().raw_kv(bad_key).build());
    assert!(matches!(err, GgufError::InvalidUtf8 { offset: 24, .. }), "{err}");
    assert!(err.to_string().starts_with("metadata key #0: "), "{err}");

    let bad_value = raw_entry("general.name", |buf| {
        put_u32(buf, 8);
        put_str(buf, b"\xc3\x28");
    });
    let err = parse(GgufBuilder::new().raw_kv(bad_value).build()).to_string();
    assert!(err.starts_with("metadata key #0 ('general.name'): the string at offset"), "{err}");

    let bad_element = raw_entry("tokenizer.ggml.tokens", |buf| {
        put_u32(buf, 9);
        put_u32(buf, 8);
        put_u64(buf, 3);
        put_str(buf, "a");
        put_str(buf, "b");
        put_str(buf, b"\x80");
    });
    let err = parse(GgufBuilder::new().raw_kv(bad_element).build()).to_string();
    assert!(err.starts_with("metadata key #0 ('tokenizer.ggml.tokens'), element [2]: "), "{err}");

    let mut bad_name = spec("x", &[1], 0, vec![0; 4]);
    bad_name.name = b"blk.\xfe".to_vec();
    let err = parse(GgufBuilder::new().tensor_spec(bad_name).build());
    assert!(matches!(err, GgufError::InvalidUtf8 { .. }));
    assert!(err.to_string().starts_with("tensor #0: "), "{err}");
}

#[test]
fn bools_must_be_zero_or_one() {
    let entry = raw_entry("flag", |buf| {
        put_u32(buf, 7);
        buf.push(2);
    });
    let err = parse(GgufBuilder::new().raw_kv(entry).build());
    assert!(matches!(err, GgufError::InvalidBool { value: 2, .. }), "{err}");
}

fn nested(depth: usize) -> Array {
    (1..depth).fold(Array::U8(vec![7]), |inner, _| Array::Array(vec![inner]))
}

#[test]
fn array_nesting_is_capped() {
    let ok = GgufBuilder::new().kv("deep", Value::Array(nested(MAX_ARRAY_DEPTH))).build();
    let f = GgufFile::from_bytes(ok).unwrap();
    assert_eq!(f.get("deep"), Some(&Value::Array(nested(MAX_ARRAY_DEPTH))));

    let too_deep = GgufBuilder::new().kv("deep", Value::Array(nested(MAX_ARRAY_DEPTH + 1))).build();
    let err = parse(too_deep);
    assert!(matches!(err, GgufError::NestingTooDeep { .. }), "{err}");

    // A hostile file claiming a million levels fails at the cap, not by stack overflow.
    let mut entry = raw_entry("deep", |buf| put_u32(buf, 9));
    for _ in 0..1_000_000 {
        put_u32(&mut entry, 9);
        put_u64(&mut entry, 1);
    }
    assert!(matches!(parse(GgufBuilder::new().raw_kv(entry).build()), GgufError::NestingTooDeep { .. }));
}

#[test]
fn keys_must_be_nonempty_and_unique() {
    let err = parse(GgufBuilder::new().kv("", Value::U8(1)).build());
    assert!(matches!(err, GgufError::EmptyKey { index: 0 }));

    let err = parse(
        GgufBuilder::new().kv("a", Value::U8(1)).kv("b", Value::U8(1)).kv("a", Value::String("again".into())).build(),
    );
    assert_eq!(err.to_string(), "metadata key #2 ('a') repeats metadata key #0");
}

#[test]
fn tensor_names_must_be_unique() {
    let err = parse(
        GgufBuilder::new()
            .tensor("w", &[1], GgmlType::F32, vec![0; 4])
            .tensor("w", &[1], GgmlType::F32, vec![0; 4])
            .build(),
    );
    assert!(matches!(err, GgufError::DuplicateTensor { index: 1, first: 0, .. }), "{err}");
}

#[test]
fn alignment_must_be_a_u32_power_of_two() {
    for bad in [0u32, 3, 48, u32::MAX] {
        let mut b =
            GgufBuilder::new().kv("general.alignment", Value::U32(bad)).tensor("w", &[1], GgmlType::F32, vec![0; 4]);
        b.layout_alignment = Some(32);
        let err = parse(b.build());
        assert!(matches!(err, GgufError::BadAlignment { value } if value == u64::from(bad)), "{err}");
    }
    let err = parse(GgufBuilder::new().kv("general.alignment", Value::U64(32)).build());
    assert!(matches!(err, GgufError::WrongType { expected: "u32", found: "u64", .. }), "{err}");
}

#[test]
fn misaligned_tensor_offsets() {
    let mut t = spec("w", &[1], 0, vec![0; 4]);
    t.offset = Some(4);
    let b = GgufBuilder::new().tensor("first", &[1], GgmlType::F32, vec![0; 4]).tensor_spec(t);
    let err = parse(b.build());
    assert_eq!(err.to_string(), "tensor #1 ('w'): data offset 4 is not a multiple of the alignment 32");
}

#[test]
fn tensor_data_past_the_end_of_file() {
    let mut t = spec("blk.3.attn_q.weight", &[8], 0, vec![0; 32]);
    t.offset = Some(1 << 20);
    let bytes = GgufBuilder::new().tensor_spec(t).build();
    let size = bytes.len();
    let err = parse(bytes).to_string();
    assert!(err.starts_with("tensor #0 ('blk.3.attn_q.weight'): data ["), "{err}");
    assert!(err.ends_with(&format!("runs past the end of the file (size {size})")), "{err}");

    let mut t = spec("w", &[8], 0, vec![0; 32]);
    t.offset = Some(u64::MAX - 31);
    let err = parse(GgufBuilder::new().tensor_spec(t).build()).to_string();
    assert!(err.contains("overflows"), "{err}");
}

#[test]
fn overlapping_tensor_data() {
    let mut b = spec("b", &[8], 0, vec![0; 32]);
    b.offset = Some(32);
    let bytes = GgufBuilder::new()
        .tensor("a", &[16], GgmlType::F32, vec![0; 64])
        .tensor_spec(b)
        .tensor("c", &[16], GgmlType::F32, vec![0; 64])
        .build();
    let err = parse(bytes).to_string();
    assert!(err.starts_with("tensor #1 ('b'): data ["), "{err}");
    assert!(err.contains("overlaps the data"), "{err}");
    assert!(err.ends_with("of tensor #0 ('a')"), "{err}");
}

#[test]
fn dimension_counts_outside_one_to_four() {
    for n_dims in [0u32, 5, u32::MAX] {
        let mut t = spec("w", &[1, 1, 1, 1, 1], 0, vec![0; 4]);
        t.n_dims = Some(n_dims);
        t.dims.truncate(n_dims.min(5) as usize);
        let err = parse(GgufBuilder::new().tensor_spec(t).build());
        assert_eq!(err.to_string(), format!("tensor #0 ('w'): has {n_dims} dimensions; ggml allows 1 to 4"));
    }
}

#[test]
fn overflowing_shapes_and_sizes() {
    let t = spec("w", &[1 << 32, 1 << 32], 0, vec![]);
    let err = parse(GgufBuilder::new().tensor_spec(t).build()).to_string();
    assert!(err.contains("overflow a 64-bit element count"), "{err}");

    // The element count fits but its size in bytes (4 each) does not.
    let t = spec("w", &[1 << 31, 1 << 31], 0, vec![]);
    let err = parse(GgufBuilder::new().tensor_spec(t).build()).to_string();
    assert!(err.contains("overflow a 64-bit byte size"), "{err}");

    // Fits in 64 bits but not in this file.
    let t = spec("w", &[1 << 20, 1 << 20], 0, vec![]);
    let err = parse(GgufBuilder::new().tensor_spec(t).build()).to_string();
    assert!(err.contains("runs past the end of the file"), "{err}");
}

#[test]
fn rows_must_be_whole_blocks() {
    let t = spec("w", &[48, 2], GgmlType::Q4_K.id(), vec![0; 288]);
    let err = parse(GgufBuilder::new().tensor_spec(t).build()).to_string();
    assert_eq!(err, "tensor #0 ('w'): row length 48 is not a multiple of the Q4_K block size 256");
}

#[test]
fn trailing_bytes_after_the_last_tensor_are_allowed() {
    // Writers pad the last tensor to the alignment; that must stay readable.
    let mut bytes = sample_file();
    bytes.extend_from_slice(&[0; 31]);
    assert!(GgufFile::from_bytes(bytes).is_ok());
}

/// xorshift64*: a deterministic generator, so any failure here reproduces exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A cheap stand-in for the fuzzer that runs on every `cargo test`: mutate a valid file in
/// the ways that stress the parser (flipped bytes, counts and lengths set to extremes, bytes
/// inserted or removed) and require a clean result every time.
#[test]
fn mutated_files_never_panic() {
    let mut nested_file =
        GgufBuilder::new().kv("n", Value::Array(nested(4))).kv("s", Value::Array(Array::String(vec!["ab".into(); 3])));
    nested_file = nested_file.tensor("t", &[2], GgmlType::F16, pattern(4, 0));
    let seeds = [sample_file(), sample_builder().version(2).build(), nested_file.build()];
    let extremes = [0u64, 1, 4, 9, 12, 13, 255, u32::MAX as u64, i64::MAX as u64, u64::MAX, 1 << 60];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut bytes = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(5) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => bytes[at] = rng.next() as u8,
                2 => {
                    let v = extremes[rng.below(extremes.len())].to_le_bytes();
                    let width = [1, 4, 8][rng.below(3)];
                    let end = (at + width).min(bytes.len());
                    bytes[at..end].copy_from_slice(&v[..end - at]);
                }
                3 => bytes.insert(at, rng.next() as u8),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        if let Ok(f) = GgufFile::from_bytes(bytes) {
            parsed += 1;
            for t in f.tensors() {
                assert_eq!(f.tensor_data(t).len() as u64, t.size);
            }
            for (_, v) in f.metadata() {
                let _ = v.to_string();
            }
        }
    }
    // Some mutations (e.g. inside tensor data) leave the file valid; most do not.
    assert!(parsed > 0 && parsed < 20_000, "{parsed}");
}

#[test]
fn raw_helpers_agree_with_the_builder() {
    // put_array is also how the fuzz seeds encode arrays; check it against a parse.
    let mut entry = Vec::new();
    put_str(&mut entry, "k");
    put_u32(&mut entry, 9);
    put_array(&mut entry, &Array::I16(vec![-1, 2]));
    let f = GgufFile::from_bytes(GgufBuilder::new().raw_kv(entry).build()).unwrap();
    assert_eq!(f.get("k").and_then(Value::as_array).and_then(Array::to_i64s), Some(vec![-1, 2]));
}
