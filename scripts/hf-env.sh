#!/usr/bin/env bash
# Sets up the Python environment that scripts/gen-hf-fixtures.py runs in and prints the venv's
# path: torch and Hugging Face `transformers` (they compute the reference logits of tiny
# random-weight models), `tokenizers`, sentence-transformers (reference sentence embeddings),
# sentencepiece and protobuf (the SentencePiece import fixture, scripts/gen-spm-fixture.py),
# and the `gguf` package from the pinned llama.cpp tree (its convert_hf_to_gguf.py must run
# against its own gguf-py, not whatever PyPI has).
#   venv=$(scripts/hf-env.sh); "$venv/bin/python" scripts/gen-hf-fixtures.py
# Not needed by the tests or CI: they read the committed fixtures.
set -euo pipefail
cache="${KILN_CACHE:-$HOME/.cache/kiln}"
venv="$cache/hf-venv"
src=$("$(dirname "$0")/fetch-llama-cpp-src.sh")
# transformers is pinned to the version llama.cpp's converter is tested with
# (requirements/requirements-convert_hf_to_gguf.txt); it has the Qwen2/Qwen3/Mistral/Phi3/Mixtral/
# Qwen2MoE/Qwen3MoE/DeepseekV3 classes. torch from PyPI is the CUDA build (it pulls the nvidia
# runtime wheels) but runs on CPU; the pin only keeps the reference numbers reproducible.
reqs="torch==2.5.1 transformers==4.57.6 tokenizers==0.22.2 safetensors==0.8.0 sentencepiece==0.2.3 protobuf==7.36.2 numpy==2.4.6 sentence-transformers==5.1.2"
# A stamp of what was installed, so that changing a pin (or the llama.cpp tree) updates the venv.
stamp="$reqs $src"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if [ "$(cat "$venv/.kiln-stamp" 2>/dev/null)" != "$stamp" ]; then
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet $reqs "$src/gguf-py" >&2
  echo "$stamp" > "$venv/.kiln-stamp"
fi
echo "$venv"
