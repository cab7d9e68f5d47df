//! Valid files written by the test builder read back exactly.

mod common;

use common::{pattern, sample_builder, sample_file, GgufBuilder};
use kiln_gguf::{Array, GgmlType, GgufError, GgufFile, Value};

fn every_value() -> Vec<(String, Value)> {
    let arrays = vec![
        Array::U8(vec![0, 255]),
        Array::I8(vec![i8::MIN, -1, i8::MAX]),
        Array::U16(vec![u16::MAX]),
        Array::I16(vec![i16::MIN]),
        Array::U32(vec![1, 2, u32::MAX]),
        Array::I32(vec![i32::MIN, 0]),
        Array::U64(vec![u64::MAX]),
        Array::I64(vec![i64::MIN, i64::MAX]),
        Array::F32(vec![1.5, -0.0, f32::INFINITY]),
        Array::F64(vec![std::f64::consts::PI]),
        Array::Bool(vec![true, false, true]),
        Array::String(vec!["".into(), "héllo".into(), "日本".into()]),
        Array::U32(vec![]),
        Array::String(vec![]),
        Array::Array(vec![]),
        Array::Array(vec![
            Array::U8(vec![1]),
            Array::String(vec!["x".into()]),
            Array::Array(vec![Array::F64(vec![2.0]), Array::Array(vec![Array::Bool(vec![])])]),
        ]),
    ];
    let mut values = vec![
        Value::U8(200),
        Value::I8(-100),
        Value::U16(60000),
        Value::I16(-30000),
        Value::U32(4_000_000_000),
        Value::I32(-2_000_000_000),
        Value::U64(u64::MAX),
        Value::I64(i64::MIN),
        Value::F32(-1.25),
        Value::F64(1e300),
        Value::Bool(false),
        Value::Bool(true),
        Value::String(String::new()),
        Value::String("a string with \"quotes\" and ünïcödé".into()),
    ];
    values.extend(arrays.into_iter().map(Value::Array));
    values.into_iter().enumerate().map(|(i, v)| (format!("test.key{i}.{}", v.type_name()), v)).collect()
}

#[test]
fn every_value_type_round_trips_in_v2_and_v3() {
    for version in [2, 3] {
        let mut b = GgufBuilder::new().version(version);
        for (k, v) in every_value() {
            b = b.kv(&k, v);
        }
        let f = GgufFile::from_bytes(b.build()).expect("valid file parses");
        assert_eq!(f.version(), version);
        assert_eq!(f.metadata(), &every_value()[..], "file order and values preserved");
        for (k, v) in every_value() {
            assert_eq!(f.get(&k), Some(&v));
        }
        assert_eq!(f.get("absent"), None);
        assert!(f.tensors().is_empty());
        assert_eq!(f.alignment(), 32);
    }
}

#[test]
fn sample_file_tensors_and_data() {
    let bytes = sample_file();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(f.file_size(), bytes.len() as u64);
    assert_eq!(f.data_offset() % 32, 0);
    let names: Vec<_> = f.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight"]);

    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims, [32, 3]);
    assert_eq!(embd.ggml_type, GgmlType::Q4_0);
    assert_eq!(embd.n_elements(), 96);
    assert_eq!(embd.n_rows(), 3);
    assert_eq!((embd.offset, embd.size), (0, 54));
    assert_eq!(f.tensor_data(embd), &pattern(54, 1)[..]);

    let norm = f.tensor("output_norm.weight").unwrap();
    assert_eq!((norm.offset, norm.size), (64, 20));
    assert_eq!(f.tensor_data(norm), &pattern(20, 2)[..]);

    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.dims, [4, 2, 1, 1]);
    assert_eq!((q.offset, q.size), (96, 16));
    assert_eq!(f.tensor_data(q), &pattern(16, 3)[..]);
    // The data really is where the descriptor says, in the file's own bytes.
    let start = (f.data_offset() + q.offset) as usize;
    assert_eq!(&bytes[start..start + 16], f.tensor_data(q));
    assert_eq!(f.tensor("missing"), None);
    assert_eq!(q.to_string(), "blk.0.attn_q.weight [4, 2, 1, 1] F16");
}

#[test]
fn custom_alignment_places_data_accordingly() {
    for alignment in [1u32, 8, 64, 256, 4096] {
        let f = GgufFile::from_bytes(
            GgufBuilder::new()
                .kv("general.alignment", Value::U32(alignment))
                .tensor("a", &[3], GgmlType::F32, pattern(12, 7))
                .tensor("b", &[1], GgmlType::I8, pattern(1, 8))
                .tensor("c", &[2], GgmlType::F16, pattern(4, 9))
                .build(),
        )
        .unwrap();
        let a = u64::from(alignment);
        assert_eq!(f.alignment(), a);
        assert_eq!(f.data_offset() % a, 0);
        for (t, seed) in f.tensors().iter().zip(7..) {
            assert_eq!(t.offset % a, 0);
            assert_eq!(f.tensor_data(t), &pattern(t.size as usize, seed)[..]);
        }
    }
}

#[test]
fn zero_element_tensors_are_allowed() {
    let f = GgufFile::from_bytes(
        GgufBuilder::new()
            .tensor("empty", &[32, 0], GgmlType::Q8_0, vec![])
            .tensor("one", &[1], GgmlType::F32, pattern(4, 0))
            .build(),
    )
    .unwrap();
    let empty = f.tensor("empty").unwrap();
    assert_eq!((empty.n_elements(), empty.size), (0, 0));
    assert!(f.tensor_data(empty).is_empty());
}

#[test]
fn typed_getters_convert_losslessly_or_say_why_not() {
    let f = GgufFile::from_bytes(
        GgufBuilder::new()
            .kv("s", Value::String("text".into()))
            .kv("u8", Value::U8(7))
            .kv("i32neg", Value::I32(-1))
            .kv("u64big", Value::U64(u64::from(u32::MAX) + 1))
            .kv("f64", Value::F64(0.25))
            .kv("f64huge", Value::F64(1e300))
            .kv("b", Value::Bool(true))
            .kv("arr", Value::Array(Array::U8(vec![1])))
            .build(),
    )
    .unwrap();
    assert_eq!(f.get_str("s").unwrap(), Some("text"));
    assert_eq!(f.get_str("absent").unwrap(), None);
    assert_eq!(f.get_u64("u8").unwrap(), Some(7));
    assert_eq!(f.get_u32("u8").unwrap(), Some(7));
    assert_eq!(f.get_u64("u64big").unwrap(), Some(1 << 32));
    assert_eq!(f.get_i64("i32neg").unwrap(), Some(-1));
    assert_eq!(f.get_f32("u8").unwrap(), Some(7.0));
    assert_eq!(f.get_f32("f64").unwrap(), Some(0.25));
    assert_eq!(f.get_bool("b").unwrap(), Some(true));
    assert_eq!(f.get_array("arr").unwrap(), Some(&Array::U8(vec![1])));
    assert_eq!(f.get_u32("absent").unwrap(), None);

    match f.get_u32("s") {
        Err(GgufError::WrongType { key, expected, found }) => {
            assert_eq!((key.as_str(), expected, found), ("s", "u32", "string"));
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    assert!(matches!(f.get_str("u8"), Err(GgufError::WrongType { found: "u8", .. })));
    assert!(matches!(f.get_bool("u8"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_f32("b"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_u64("f64"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_array("s"), Err(GgufError::WrongType { .. })));
    assert!(matches!(f.get_u64("i32neg"), Err(GgufError::OutOfRange { .. })));
    assert!(matches!(f.get_u32("u64big"), Err(GgufError::OutOfRange { .. })));
    assert!(matches!(f.get_f32("f64huge"), Err(GgufError::OutOfRange { .. })));
    let msg = f.get_u32("u64big").unwrap_err().to_string();
    assert_eq!(msg, "metadata key 'u64big' holds 4294967296, which does not fit in u32");
}

#[test]
fn open_maps_the_same_file_as_from_bytes() {
    let bytes = sample_file();
    let path = std::env::temp_dir().join(format!("kiln-gguf-open-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let mapped = GgufFile::open(&path);
    std::fs::remove_file(&path).ok();
    let mapped = mapped.unwrap();
    let owned = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(mapped.metadata(), owned.metadata());
    assert_eq!(mapped.tensors(), owned.tensors());
    for t in owned.tensors() {
        assert_eq!(mapped.tensor_data(t), owned.tensor_data(t));
    }
    assert_eq!(mapped.data_offset(), owned.data_offset());
    assert_eq!(mapped.file_size(), owned.file_size());
}

#[test]
fn open_reports_the_path_on_io_errors_and_handles_empty_files() {
    let missing = std::env::temp_dir().join("kiln-gguf-definitely-missing.gguf");
    let err = GgufFile::open(&missing).unwrap_err();
    assert!(matches!(err, GgufError::Io { .. }));
    assert!(err.to_string().contains("kiln-gguf-definitely-missing.gguf"), "{err}");

    let empty = std::env::temp_dir().join(format!("kiln-gguf-empty-{}.gguf", std::process::id()));
    std::fs::write(&empty, b"").unwrap();
    let result = GgufFile::open(&empty);
    std::fs::remove_file(&empty).ok();
    assert!(matches!(result, Err(GgufError::Truncated { offset: 0, .. })), "{result:?}");
}

#[test]
fn a_foreign_descriptor_gets_no_data_rather_than_a_panic() {
    let f = GgufFile::from_bytes(sample_file()).unwrap();
    let mut t = f.tensors()[0].clone();
    t.offset = u64::MAX - 3;
    assert!(f.tensor_data(&t).is_empty());
    t.offset = 0;
    t.size = f.file_size() * 2;
    assert!(f.tensor_data(&t).is_empty());
}

#[test]
fn display_summarises() {
    let f = GgufFile::from_bytes(sample_file()).unwrap();
    let shown: Vec<String> = f.metadata().iter().map(|(k, v)| format!("{k} = {v}")).collect();
    assert!(shown.contains(&"general.architecture = \"llama\"".to_string()));
    assert!(shown.contains(&"tokenizer.ggml.tokens = [string; 3]".to_string()));
    assert!(shown.contains(&"x.nested = [array; 2]".to_string()));
    assert!(format!("{f:?}").contains("tensors: 3"));
    // The builder's sample is what the fuzz seeds and other tests start from; keep it valid.
    assert!(GgufFile::from_bytes(sample_builder().version(2).build()).is_ok());
}
