#!/usr/bin/env bash
# Builds llama.cpp (the copy vendored in the llama-cpp-python sdist on PyPI) for side-by-side
# reference runs: fixtures (scripts/gen-llamacpp-fixtures.py, quantization and embedding
# references) and benchmarks (scripts/bench-vs-llamacpp.sh).
# Not needed by the tests or CI: they read the committed fixtures.
# Output: $KILN_CACHE/llama.cpp/{build/bin,py} ; prints the bin dir.
set -euo pipefail
cache="${KILN_CACHE:-$HOME/.cache/kiln}"
src=$("$(dirname "$0")/fetch-llama-cpp-src.sh")
root="$cache/llama.cpp"
cd "$root"
if [ ! -x build/bin/llama-embedding ]; then
  # AMX is advertised by some virtual machines but faults after a context switch: keep it off.
  cmake -S "$src" -B build \
    -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON \
    -DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
    -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" >&2
  cmake --build build -j "$(nproc)" --target llama-bench llama-server llama-tokenize llama-completion \
    llama-quantize llama-embedding >&2
fi
echo "$root/build/bin"
