#!/usr/bin/env python3
"""Generates BF16, sharded variants of two import fixtures and llama.cpp's BF16 conversions of
them, the reference for what Kiln writes from a BF16 checkpoint without --quantize (which
tensors stay BF16 and which the converter writes in F32) and for sharded checkpoints.

From crates/kiln-models/tests/fixtures/hf/qwen2moe/hf (a router and a shared-expert gate) and
crates/kiln-convert/tests/fixtures/bert/hf (position and token-type embeddings), each weight is
rounded to bfloat16 and the weights are split over two shards named by
model.safetensors.index.json; the other files are copied. Output, under
crates/kiln-convert/tests/fixtures/<name>-bf16/: hf/ and model.gguf
(convert_hf_to_gguf.py --outtype bf16, the pre-tokenizer declared as the fixtures' generators do).

Usage (from the repository root; the venv comes from scripts/hf-env.sh):
  venv=$(scripts/hf-env.sh)
  "$venv/bin/python" scripts/gen-bf16-fixtures.py
"""

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/kiln-convert/tests/fixtures"
SOURCES = {
    "qwen2moe": (ROOT / "crates/kiln-models/tests/fixtures/hf/qwen2moe/hf", "qwen2"),
    "bert": (OUT / "bert/hf", "jina-v2-en"),
}


def hf_fixtures():
    """scripts/gen-hf-fixtures.py as a module, for its converter runner."""
    spec = importlib.util.spec_from_file_location("gen_hf_fixtures", ROOT / "scripts/gen-hf-fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    gen = hf_fixtures()
    llama_cpp = subprocess.run([ROOT / "scripts/fetch-llama-cpp-src.sh"], check=True, capture_output=True,
                               text=True).stdout.strip()
    for name, (src, pre) in SOURCES.items():
        out = OUT / f"{name}-bf16"
        hf_dir = out / "hf"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(src, hf_dir, ignore=shutil.ignore_patterns("*.safetensors"))
        tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(src / "model.safetensors").items()}
        names = sorted(tensors)
        shards = [names[: len(names) // 2], names[len(names) // 2:]]
        weight_map = {}
        for i, shard in enumerate(shards):
            file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file({k: tensors[k] for k in shard}, hf_dir / file, metadata={"format": "pt"})
            weight_map.update({k: file for k in shard})
        (hf_dir / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2) + "\n")
        config = json.loads((hf_dir / "config.json").read_text())
        config["torch_dtype"] = config["dtype"] = "bfloat16"
        (hf_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        subprocess.run([sys.executable, "-c", gen.CONVERT, llama_cpp, pre, str(hf_dir), "--outtype", "bf16",
                        "--outfile", str(out / "model.gguf"), "--model-name", f"kiln-tiny-{name}-bf16"],
                       check=True)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        print(f"{name}-bf16: {size / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
