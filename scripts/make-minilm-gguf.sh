#!/usr/bin/env bash
# Makes the F32 GGUF of all-MiniLM-L6-v2 that the embedding tests use (kiln-testdata's
# minilm_gguf, scripts/test-e2e.sh) from the Hugging Face directory scripts/fetch-models.sh
# fetches, with llama.cpp's converter (in the venv scripts/hf-env.sh makes). Cached; prints
# the path: ${KILN_TEST_MODELS:-$KILN_CACHE/models}/all-MiniLM-L6-v2.gguf
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${KILN_CACHE:-$HOME/.cache/kiln}"
out="${KILN_TEST_MODELS:-$cache/models}/all-MiniLM-L6-v2.gguf"
if [ ! -s "$out" ]; then
  dir=$(scripts/fetch-models.sh minilm)
  venv=$(scripts/hf-env.sh)
  "$venv/bin/python" "$(scripts/fetch-llama-cpp-src.sh)/convert_hf_to_gguf.py" "$dir" \
    --outtype f32 --outfile "$out.partial" >&2
  mv "$out.partial" "$out"
fi
echo "$out"
