//! Parses arbitrary bytes as GGUF. Any panic, out-of-bounds read, overflow (debug
//! assertions are on) or oversized allocation is a bug; errors are the expected outcome.

#![no_main]

use libfuzzer_sys::fuzz_target;

use kiln_gguf::{GgufFile, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(f) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = (f.version(), f.alignment(), f.data_offset(), f.file_size());
    assert_eq!(f.file_size(), data.len() as u64);
    assert_eq!(f.alignment().count_ones(), 1);
    assert!(f.data_offset().is_multiple_of(f.alignment()));

    for (key, value) in f.metadata() {
        // Compare addresses, not values: NaN != NaN.
        assert!(f.get(key).is_some_and(|v| std::ptr::eq(v, value)), "key index agrees");
        let _ = value.to_string();
        let _ = (value.as_u64(), value.as_i64(), value.as_f64(), value.as_str(), value.as_bool());
        let _ = (f.get_str(key), f.get_u64(key), f.get_u32(key), f.get_i64(key));
        let _ = (f.get_f32(key), f.get_bool(key), f.get_array(key));
        if let Value::Array(a) = value {
            touch_array(a);
        }
    }

    let mut previous_end = None;
    for t in f.tensors() {
        assert!(f.tensor(&t.name).is_some_and(|found| std::ptr::eq(found, t)));
        let data = f.tensor_data(t);
        assert_eq!(data.len() as u64, t.size, "tensor_data is exactly the tensor's bytes");
        assert!(t.offset.is_multiple_of(f.alignment()));
        assert!((1..=kiln_gguf::MAX_DIMS).contains(&t.dims.len()));
        assert_eq!(t.ggml_type.bytes_for(t.n_elements()), Some(t.size));
        let _ = (t.n_rows(), t.to_string());
        // Touch the first and last byte so a bad slice would be caught by ASan.
        let _ = (data.first(), data.last());
        previous_end = Some(f.data_offset() + t.offset + t.size);
    }
    if let Some(end) = previous_end {
        assert!(end <= f.file_size());
    }
});

fn touch_array(a: &kiln_gguf::Array) {
    let _ = (a.len(), a.is_empty(), a.elem_type_name(), a.to_string());
    let _ = (a.as_strings(), a.as_f32s(), a.as_i32s(), a.as_u32s(), a.as_bools());
    let _ = (a.to_i64s(), a.to_f32s());
    if let Some(inner) = a.as_arrays() {
        for a in inner {
            touch_array(a);
        }
    }
}
