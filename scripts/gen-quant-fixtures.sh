#!/usr/bin/env bash
# llama.cpp's quantizations of a Hugging Face fixture's F32 GGUF, the reference for Kiln's
# quantization at create time (crates/kiln-convert/tests/quantize_reference.rs).
#   scripts/gen-quant-fixtures.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin=$("$root/scripts/build-llama-cpp.sh")
src="$root/crates/kiln-models/tests/fixtures/hf/qwen2/model.gguf"
out="$root/crates/kiln-convert/tests/fixtures/quantized"
mkdir -p "$out"
for scheme in q8_0 q4_0 q4_K_M f16; do
  "$bin/llama-quantize" "$src" "$out/qwen2.$scheme.gguf" "$scheme" >&2
done
