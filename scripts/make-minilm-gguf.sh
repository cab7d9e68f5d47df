#!/usr/bin/env bash
# Makes the F32 GGUF of all-MiniLM-L6-v2 that the embedding tests use (kiln-testdata's
# minilm_gguf, scripts/test-e2e.sh) from the Hugging Face directory scripts/fetch-models.sh
# fetches, with Kiln's own importer (kiln-convert; it writes what llama.cpp's converter writes
# for this model, tensor for tensor, see crates/kiln-convert/tests/llamacpp_reference.rs).
# Cached; prints the path: ${KILN_TEST_MODELS:-$KILN_CACHE/models}/all-MiniLM-L6-v2.gguf
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${KILN_CACHE:-$HOME/.cache/kiln}"
out="${KILN_TEST_MODELS:-$cache/models}/all-MiniLM-L6-v2.gguf"
if [ ! -s "$out" ]; then
  dir=$(scripts/fetch-models.sh minilm)
  cargo run --quiet --locked -p kiln-convert --example convert -- "$dir" "$out.partial" >&2
  mv "$out.partial" "$out"
fi
echo "$out"
