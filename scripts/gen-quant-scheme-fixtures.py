#!/usr/bin/env python3
"""Records which type llama.cpp's `llama-quantize` gives each tensor, per quantization scheme,
for kiln-quant's `QuantScheme::tensor_type` test.

Runs `llama-quantize` (no importance matrix; --allow-requantize for sources already quantized)
for every scheme on every model given, plus synthetic models written here with gguf-py (dense,
8 experts, Falcon, 80 blocks; rows of 256 so that no K type falls back), and
reads the chosen types back from the outputs. Writes one small JSON: per model its
architecture, layer and expert counts, whether it has `output.weight`, and per tensor its
name, dimensions (innermost first) and the type of each scheme, in the order of `schemes`.

Usage (from the repository root):
  eval "$(scripts/ref-env.sh)"
  python scripts/gen-quant-scheme-fixtures.py crates/kiln-models/tests/fixtures/hf/*/model.gguf \\
      "$KILN_TEST_MODELS"/SmolLM2-135M-Instruct.Q4_1.gguf "$KILN_TEST_MODELS"/gemma-3-270m-q4_k_m.gguf \\
      [--out crates/kiln-quant/tests/fixtures/quant_schemes.json]
"""

import argparse
import json
import os
import pathlib
import subprocess
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, GGUFWriter

SCHEMES = ["f32", "f16", "q8_0", "q4_0", "q4_K_M", "q5_K_M", "q6_K"]


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    v = f.parts[f.data[0]]
    return bytes(v).decode() if f.types and f.types[0].name == "STRING" else int(v[0])


def synthetic_model(path, arch, n_layer, n_expert):
    """A model with zero weights: only names, shapes and metadata matter to the type choice."""
    n_embd, n_ff, n_vocab, n_kv = 256, 256, 512, 128
    w = GGUFWriter(str(path), arch)
    w.add_block_count(n_layer)
    w.add_context_length(256)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_dimension_count(64)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_layer_norm_eps(1e-5)
    w.add_vocab_size(n_vocab)
    if n_expert:
        w.add_expert_count(n_expert)
        w.add_expert_used_count(2)
    w.add_file_type(1)

    def add(name, *shape):  # numpy order: outermost first; matrices F16, the rest F32 as converters write them
        f16 = len(shape) > 1 and "ffn_gate_inp" not in name
        w.add_tensor(name, np.zeros(shape, dtype=np.float16 if f16 else np.float32))

    add("token_embd.weight", n_vocab, n_embd)
    add("output_norm.weight", n_embd)
    add("output.weight", n_vocab, n_embd)
    for i in range(n_layer):
        add(f"blk.{i}.attn_norm.weight", n_embd)
        if arch == "falcon":
            add(f"blk.{i}.attn_qkv.weight", n_embd + 2 * n_kv, n_embd)
        else:
            add(f"blk.{i}.attn_q.weight", n_embd, n_embd)
            add(f"blk.{i}.attn_k.weight", n_kv, n_embd)
            add(f"blk.{i}.attn_v.weight", n_kv, n_embd)
        add(f"blk.{i}.attn_output.weight", n_embd, n_embd)
        add(f"blk.{i}.ffn_norm.weight", n_embd)
        if n_expert:
            add(f"blk.{i}.ffn_gate_inp.weight", n_expert, n_embd)
            add(f"blk.{i}.ffn_gate_exps.weight", n_expert, n_ff, n_embd)
            add(f"blk.{i}.ffn_up_exps.weight", n_expert, n_ff, n_embd)
            add(f"blk.{i}.ffn_down_exps.weight", n_expert, n_embd, n_ff)
        else:
            add(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
            add(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
            add(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# name, architecture, blocks, experts: rules for 8 experts, Falcon, and llama.cpp's "70B" size
# (an 80-block llama with grouped-query attention).
SYNTHETIC = [
    ("synthetic-dense", "llama", 12, 0),
    ("synthetic-moe8", "llama", 12, 8),
    ("synthetic-falcon", "falcon", 16, 0),
    ("synthetic-llama80", "llama", 80, 0),
]


def record(model, source, quantize, tmp, keep=lambda name: True):
    """The model's facts and each kept tensor's type per scheme."""
    reader = GGUFReader(model)
    arch = field(reader, "general.architecture")
    names = [t.name for t in reader.tensors]
    entry = {
        "source": source,
        "arch": arch,
        "n_layers": field(reader, f"{arch}.block_count"),
        "n_expert": field(reader, f"{arch}.expert_count") or 0,
        "has_output": "output.weight" in names,
    }
    requantize = any(t.tensor_type not in (T.F32, T.F16, T.BF16) for t in reader.tensors)
    types = {n: [] for n in names}
    dims = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    for scheme in SCHEMES:
        out = tmp / f"{source.replace('/', '_')}-{scheme}.gguf"
        cmd = [quantize] + (["--allow-requantize"] if requantize else []) + [str(model), str(out), scheme.upper(), "2"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for t in GGUFReader(out).tensors:
            types[t.name].append(t.tensor_type.name)
        out.unlink()
    entry["tensors"] = [[n, dims[n], types[n]] for n in names if keep(n)]
    return entry


def dump(doc, path):
    """JSON with one line per tensor: small diffs when llama.cpp's choices change."""
    lines = ["{", f' "schemes": {json.dumps(doc["schemes"])},', ' "models": [']
    for mi, m in enumerate(doc["models"]):
        head = {k: v for k, v in m.items() if k != "tensors"}
        lines.append("  {" + json.dumps(head)[1:-1] + ', "tensors": [')
        rows = [f"   {json.dumps(t)}" for t in m["tensors"]]
        lines.append(",\n".join(rows))
        lines.append("  ]}" + ("," if mi + 1 < len(doc["models"]) else ""))
    lines.append(" ]")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


def main():
    here = pathlib.Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="GGUF model files")
    ap.add_argument("--out", default=str(here / "crates/kiln-quant/tests/fixtures/quant_schemes.json"))
    args = ap.parse_args()
    quantize = str(pathlib.Path(os.environ["LLAMA_CPP_BIN"]) / "llama-quantize")
    models = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for m in args.models:
            p = pathlib.Path(m).resolve()
            # Fixture models are named by their directory, downloaded ones by their file.
            source = f"hf/{p.parent.name}" if p.name == "model.gguf" else p.stem
            models.append(record(p, source, quantize, tmp))
        for name, arch, n_layer, n_expert in SYNTHETIC:
            path = tmp / f"{name}.gguf"
            synthetic_model(path, arch, n_layer, n_expert)
            # Of the 80 blocks only attn_v, the tensor the size rule changes, keeps the fixture small.
            keep = (lambda n: ".attn_v." in n or not n.startswith("blk.")) if n_layer == 80 else (lambda n: True)
            models.append(record(path, name, quantize, tmp, keep))
            path.unlink()
    dump({"schemes": SCHEMES, "models": models}, pathlib.Path(args.out))
    print(f"{len(models)} models, {sum(len(m['tensors']) for m in models)} tensors -> {args.out}")


if __name__ == "__main__":
    main()
