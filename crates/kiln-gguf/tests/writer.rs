//! `GgufWriter` output read back by the reader, and byte for byte against the independent test
//! builder (which shares no code with the writer).

mod common;

use common::{pattern, GgufBuilder};
use kiln_gguf::{Array, GgmlType, GgufFile, GgufWriter, TensorSpec, Value};

fn values() -> Vec<(String, Value)> {
    let values = vec![
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
        Value::Bool(true),
        Value::String("ünïcödé \"quoted\"".into()),
        Value::Array(Array::U8(vec![0, 255])),
        Value::Array(Array::I8(vec![-1])),
        Value::Array(Array::U16(vec![7])),
        Value::Array(Array::I16(vec![-7])),
        Value::Array(Array::U32(vec![])),
        Value::Array(Array::I32(vec![3, 1, 1])),
        Value::Array(Array::U64(vec![u64::MAX])),
        Value::Array(Array::I64(vec![i64::MIN])),
        Value::Array(Array::F32(vec![0.5, -0.0])),
        Value::Array(Array::F64(vec![2.0])),
        Value::Array(Array::Bool(vec![true, false])),
        Value::Array(Array::String(vec!["".into(), "日本".into()])),
        Value::Array(Array::Array(vec![Array::U8(vec![1]), Array::Array(vec![Array::String(vec!["x".into()])])])),
    ];
    values.into_iter().enumerate().map(|(i, v)| (format!("test.key{i}.{}", v.type_name()), v)).collect()
}

/// (name, dims, type, data)
fn tensors() -> Vec<(&'static str, Vec<u64>, GgmlType, Vec<u8>)> {
    vec![
        ("token_embd.weight", vec![32, 3], GgmlType::Q4_0, pattern(3 * 18, 1)),
        ("output_norm.weight", vec![5], GgmlType::F32, pattern(20, 2)),
        ("blk.0.ffn_up_exps.weight", vec![4, 2, 3], GgmlType::BF16, pattern(48, 3)),
    ]
}

fn write(writer: &GgufWriter) -> Vec<u8> {
    let data: Vec<Vec<u8>> = tensors().into_iter().map(|t| t.3).collect();
    let mut out = Vec::new();
    let n = writer.write(&mut out, |i, sink| sink.write_all(&data[i])).unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

fn filled(extra: &[(&str, Value)]) -> (GgufWriter, GgufBuilder) {
    let mut writer = GgufWriter::new();
    let mut builder = GgufBuilder::new();
    for (k, v) in values().into_iter().chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone()))) {
        writer.set(k.clone(), v.clone());
        builder = builder.kv(&k, v);
    }
    for (name, dims, ty, data) in tensors() {
        writer.add_tensor(TensorSpec { name: name.into(), dims: dims.clone(), ggml_type: ty }).unwrap();
        builder = builder.tensor(name, &dims, ty, data);
    }
    (writer, builder)
}

#[test]
fn written_files_read_back_and_match_the_reference_layout() {
    for (alignment, extra) in [(32, vec![]), (64, vec![("general.alignment", Value::U32(64))])] {
        let (writer, builder) = filled(&extra);
        let bytes = write(&writer);
        // The builder stops after the last tensor; the writer pads it as llama.cpp's does.
        let reference = builder.build();
        assert_eq!(&bytes[..reference.len()], &reference[..]);
        assert!(bytes[reference.len()..].iter().all(|&b| b == 0));
        assert_eq!(bytes.len() as u64 % alignment, 0);

        let file = GgufFile::from_bytes(bytes).unwrap();
        assert_eq!(file.version(), 3);
        assert_eq!(file.alignment(), alignment);
        let mut want = values();
        want.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        assert_eq!(file.metadata(), &want[..]);
        for (name, dims, ty, data) in tensors() {
            let t = file.tensor(name).unwrap();
            assert_eq!((&t.dims, t.ggml_type), (&dims, ty));
            assert_eq!(file.tensor_data(t), &data[..]);
        }
    }
}

#[test]
fn set_replaces_in_place_and_remove_drops() {
    let mut writer = GgufWriter::new();
    writer.set("a", Value::U32(1));
    writer.set("b", Value::U32(2));
    writer.set("a", Value::String("x".into()));
    writer.remove("b");
    assert_eq!(writer.metadata(), &[("a".to_string(), Value::String("x".into()))]);
}

#[test]
fn wrong_sizes_and_shapes_are_errors() {
    let mut writer = GgufWriter::new();
    let spec = |name: &str, dims: Vec<u64>, ty| TensorSpec { name: name.into(), dims, ggml_type: ty };
    let err = writer.add_tensor(spec("q", vec![33, 2], GgmlType::Q8_0)).unwrap_err();
    assert!(err.to_string().contains("cannot be stored as Q8_0"), "{err}");
    assert!(writer.add_tensor(spec("e", vec![], GgmlType::F32)).is_err());
    assert!(writer.add_tensor(spec("d", vec![1; 5], GgmlType::F32)).is_err());
    writer.add_tensor(spec("t", vec![4], GgmlType::F32)).unwrap();
    let err = writer.add_tensor(spec("t", vec![4], GgmlType::F32)).unwrap_err();
    assert!(err.to_string().contains("declared twice"), "{err}");

    let err = writer.write(Vec::new(), |_, sink| sink.write_all(&[0; 12])).unwrap_err();
    assert!(err.to_string().contains("12 bytes of data given, 16 declared"), "{err}");
    writer.set("general.alignment", Value::U32(48));
    let err = writer.write(Vec::new(), |_, sink| sink.write_all(&[0; 16])).unwrap_err();
    assert!(err.to_string().contains("power of two"), "{err}");
}
