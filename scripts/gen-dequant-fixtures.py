#!/usr/bin/env python3
"""Generates dequantization fixtures for kiln-quant with the Python `gguf` package.

For every model file given, takes the first tensor of each tensor type present, keeps its first
rows (at most two rows and about 8 KB of raw bytes), and records the raw bytes together with
`gguf.quants.dequantize` of them. Then adds synthetic tensors for the types the models lack:
  - Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16, F16: random floats quantized with `gguf.quants.quantize`
    (ggml's reference quantizers); the float input is stored too, so that kiln-quant's own
    reference quantizers can be checked byte for byte;
  - Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (no Python quantizer): random bytes with sane f16 scales.

Each fixture is one little-endian file `dequant_<source>_<type>.bin`:
  magic b"KQFX", u32 version (1), u32 ggml type id, u32 rows, u32 k (elements per row),
  u32 flags (bit 0: float input present), u32 name length, name (UTF-8, the tensor's name),
  raw bytes (rows * row bytes), expected f32 (rows * k), [input f32 (rows * k)].
An `index.json` next to them lists the fixtures for people.

With --ggml-cpu, also quantizes rows with ggml's own model-file quantizers for the K formats
(`ggml_quantize_chunk` of libggml-base, no importance matrix: what llama-quantize writes):
pseudo-random rows and edge cases (zeros, a lone outlier, negative-only, positive-only,
tiny magnitudes, constant blocks) to Q2_K, Q3_K, Q4_K, Q5_K and Q6_K, written as fixtures with float input
`dequant_ggml_<type>.bin`, so that kiln-quant's quantizers are checked byte for byte and their
round-trip error against ggml's.

With --ggml-cpu (llama.cpp's libggml-cpu shared library, as scripts/build-llama-cpp.sh builds
it), also records what llama.cpp's CPU backend computes with each fixture's weights, through
`ggml_get_type_traits_cpu`: random activation rows, its activation quantizer's bytes for them
(`from_float` of the weight type's `vec_dot_type`), and its `vec_dot` of every weight row with
every activation row. One file `dot_llamacpp_<source>_<type>.bin` per dequant fixture:
  magic b"KQLD", u32 version (1), u32 weight type id, u32 activation type id, u32 rows, u32 m,
  u32 k, weights (rows * row bytes), activations f32 (m * k), quantized activations
  (m * activation row bytes), dot products f32 (rows * m, row-major).

Usage (from the repository root):
  eval "$(scripts/ref-env.sh)"
  python scripts/gen-dequant-fixtures.py SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf \
      [--ggml-cpu "$LLAMA_CPP_LIB_PATH/libggml-cpu.so"] [--out crates/kiln-quant/tests/fixtures]
"""

import argparse
import ctypes
import json
import pathlib
import re
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, quants
from gguf.constants import GGML_QUANT_SIZES

MAX_RAW = 8192
MAX_ROWS = 2


def row_bytes(qtype, k):
    block, size = GGML_QUANT_SIZES[qtype]
    assert k % block == 0
    return k // block * size


def write_fixture(out_dir, source, qtype, name, raw, k, inputs=None):
    rows = len(raw) // row_bytes(qtype, k)
    assert rows * row_bytes(qtype, k) == len(raw)
    expected = quants.dequantize(np.frombuffer(raw, dtype=np.uint8).reshape(rows, -1), qtype)
    expected = np.asarray(expected, dtype=np.float32).reshape(-1)
    assert expected.size == rows * k
    name_b = name.encode()
    header = b"KQFX" + struct.pack("<6I", 1, int(qtype), rows, k, 1 if inputs is not None else 0, len(name_b))
    path = out_dir / f"dequant_{source}_{qtype.name.lower()}.bin"
    with open(path, "wb") as f:
        f.write(header + name_b + bytes(raw) + expected.astype("<f4").tobytes())
        if inputs is not None:
            f.write(np.asarray(inputs, dtype="<f4").reshape(-1).tobytes())
    return {"file": path.name, "source": source, "tensor": name, "type": qtype.name, "rows": rows, "k": k}


def model_fixtures(path, out_dir):
    source = re.sub(r"[^a-z0-9]+", "_", pathlib.Path(path).stem.lower()).strip("_")
    reader = GGUFReader(path)
    done = set()
    entries = []
    for t in reader.tensors:
        qtype = t.tensor_type
        if qtype in done:
            continue
        done.add(qtype)
        k = int(t.shape[0])
        rb = row_bytes(qtype, k)
        raw_all = np.asarray(t.data).view(np.uint8).reshape(-1)
        rows = max(1, min(MAX_ROWS, MAX_RAW // rb, raw_all.size // rb))
        entries.append(write_fixture(out_dir, source, qtype, t.name, raw_all[: rows * rb].tobytes(), k))
    return entries


def synthetic_fixtures(out_dir, seed):
    rng = np.random.default_rng(seed)
    entries = []
    k, rows = 512, 2
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16, T.F16):
        x = (rng.standard_normal((rows, k)) * rng.uniform(0.01, 2.0, (rows, 1))).astype(np.float32)
        x[0, 7] = 0.0  # a zero, and a block of zeros (d = 0)
        x[1, 32:64] = 0.0
        raw = np.asarray(quants.quantize(x, qtype)).view(np.uint8).reshape(-1).tobytes()
        entries.append(write_fixture(out_dir, "synthetic", qtype, f"random_{qtype.name.lower()}", raw, k, x))
    # K formats: random bits, f16 scales in a sane range (no inf/NaN), some negative.
    scale_fields = {T.Q2_K: (80, 82), T.Q3_K: (108,), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,)}
    for qtype, fields in scale_fields.items():
        _, size = GGML_QUANT_SIZES[qtype]
        blocks = rows * k // 256
        raw = rng.integers(0, 256, (blocks, size), dtype=np.uint8)
        for at in fields:
            d = rng.uniform(-0.05, 0.05, blocks).astype(np.float16)
            raw[:, at : at + 2] = d.view(np.uint8).reshape(blocks, 2)
        entries.append(write_fixture(out_dir, "synthetic", qtype, f"random_{qtype.name.lower()}", raw.tobytes(), k))
    return entries


class TypeTraitsCpu(ctypes.Structure):
    _fields_ = [
        ("from_float", ctypes.c_void_p),
        ("vec_dot", ctypes.c_void_p),
        ("vec_dot_type", ctypes.c_int),
        ("nrows", ctypes.c_int64),
    ]


FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VEC_DOT = ctypes.CFUNCTYPE(
    None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
)


def activations(rng, m, k):
    """Activation-like rows: normal values with a few outliers, and blocks that hit rounding
    ties (the largest magnitude 127 makes the Q8_0 multiplier exactly 1, so halves are ties)."""
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[rng.random((m, k)) < 0.01] *= 20.0
    x[0, :32] = np.arange(32, dtype=np.float32) * 0.5 - 8.0
    x[0, 0] = 127.0
    return x


def llamacpp_fixtures(lib_path, out_dir, dequant_entries, seed):
    lib = ctypes.CDLL(lib_path)
    # Row sizes from ggml itself: the Python package's table has an outdated size for Q8_1.
    base = ctypes.CDLL(str(pathlib.Path(lib_path).with_name("libggml-base.so")))
    base.ggml_row_size.restype = ctypes.c_size_t
    base.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.ggml_cpu_init()
    lib.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TypeTraitsCpu)
    lib.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    rng = np.random.default_rng(seed + 1)
    entries = []
    for e in dequant_entries:
        qtype = T[e["type"]]
        traits = lib.ggml_get_type_traits_cpu(int(qtype)).contents
        act = T(traits.vec_dot_type)
        rows, k, m = e["rows"], e["k"], 3
        with open(out_dir / e["file"], "rb") as f:
            blob = f.read()
        name_len = struct.unpack_from("<I", blob, 24)[0]
        raw = blob[28 + name_len : 28 + name_len + rows * row_bytes(qtype, k)]
        x = activations(rng, m, k)
        arb = base.ggml_row_size(int(act), k)
        xq = (ctypes.c_uint8 * (m * arb))()
        # The activation quantizer is the vec_dot_type's own `from_float`.
        from_float = FROM_FLOAT(lib.ggml_get_type_traits_cpu(int(act)).contents.from_float)
        for c in range(m):
            from_float(x[c].ctypes.data, ctypes.addressof(xq) + c * arb, k)
        vec_dot = VEC_DOT(traits.vec_dot)
        wbuf = ctypes.create_string_buffer(raw, len(raw))
        rb = row_bytes(qtype, k)
        dots = np.zeros((rows, m), dtype=np.float32)
        for r in range(rows):
            for c in range(m):
                out = ctypes.c_float()
                vec_dot(k, ctypes.byref(out), 0, ctypes.addressof(wbuf) + r * rb, 0, ctypes.addressof(xq) + c * arb, 0, 1)
                dots[r, c] = out.value
        path = out_dir / e["file"].replace("dequant_", "dot_llamacpp_")
        with open(path, "wb") as f:
            f.write(b"KQLD" + struct.pack("<6I", 1, int(qtype), int(act), rows, m, k))
            f.write(raw + x.astype("<f4").tobytes() + bytes(xq) + dots.astype("<f4").tobytes())
        entries.append({"file": path.name, "weights": e["file"], "type": qtype.name, "activations": act.name,
                        "rows": rows, "m": m, "k": k})
    return entries


def edge_case_rows(rng, k):
    """Rows that reach the quantizers' special paths, one per row."""
    rows = []
    rows.append(rng.standard_normal(k) * 0.02)  # weight-like
    # Magnitudes varying from one 16-element sub-block to the next (sub-block scales differ).
    rows.append(rng.standard_normal(k) * np.repeat(10.0 ** rng.uniform(-3, 1, k // 16), 16))
    x = rng.standard_normal(k)
    x[:256] = 0.0  # a zero super-block
    x[300:332] = 0.0  # a zero sub-block
    rows.append(x)
    x = rng.standard_normal(k) * 0.01
    x[37] = 3.0  # a lone outlier
    x[256:] = 0.0
    x[400] = -5.0  # the only non-zero value of its super-block
    rows.append(x)
    rows.append(-np.abs(rng.standard_normal(k)))  # negative only
    rows.append(np.abs(rng.standard_normal(k)) + 0.5)  # positive only, no zero
    rows.append(rng.standard_normal(k) * 1e-6)  # tiny: f16 super-block scales underflow
    x = rng.standard_normal(k) * 1e-20  # below ggml's GROUP_MAX_EPS
    x[256:288] = 0.25  # a constant sub-block
    x[320:] = rng.standard_normal(k - 320) * 1e3
    rows.append(x)
    return np.asarray(rows, dtype=np.float32)


def kquant_fixtures(lib_path, out_dir, seed):
    base = ctypes.CDLL(str(pathlib.Path(lib_path).with_name("libggml-base.so")))
    base.ggml_quantize_chunk.restype = ctypes.c_size_t
    base.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                         ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    rng = np.random.default_rng(seed + 2)
    k = 512
    x = edge_case_rows(rng, k)
    rows = x.shape[0]
    entries = []
    for qtype in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        raw = (ctypes.c_uint8 * (rows * row_bytes(qtype, k)))()
        n = base.ggml_quantize_chunk(int(qtype), x.ctypes.data, raw, 0, rows, k, None)
        assert n == len(raw)
        entries.append(write_fixture(out_dir, "ggml", qtype, f"edge_cases_{qtype.name.lower()}", bytes(raw), k, x))
    return entries


def main():
    here = pathlib.Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="GGUF model files")
    ap.add_argument("--out", default=str(here / "crates/kiln-quant/tests/fixtures"))
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--ggml-cpu", help="llama.cpp's libggml-cpu shared library, for the dot_llamacpp fixtures")
    args = ap.parse_args()
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for m in args.models:
        entries += model_fixtures(m, out_dir)
    entries += synthetic_fixtures(out_dir, args.seed)
    if args.ggml_cpu:
        entries += llamacpp_fixtures(args.ggml_cpu, out_dir, list(entries), args.seed)
        entries += kquant_fixtures(args.ggml_cpu, out_dir, args.seed)
    with open(out_dir / "index.json", "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    total = sum((out_dir / e["file"]).stat().st_size for e in entries)
    print(f"{len(entries)} fixtures, {total} bytes in {out_dir}")


if __name__ == "__main__":
    main()
