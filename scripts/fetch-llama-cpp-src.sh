#!/usr/bin/env bash
# Fetches and unpacks the llama.cpp sources that the project pins: the copy vendored in the
# llama-cpp-python sdist on PyPI (PyPI is reachable where GitHub may not be). Shared by
# scripts/build-llama-cpp.sh (which builds it) and scripts/hf-env.sh (which only needs its
# Python converter, convert_hf_to_gguf.py, and gguf-py).
# Output: $KILN_CACHE/llama.cpp/src-<version> ; prints the llama.cpp source dir inside it.
set -euo pipefail
version=0.3.36
cache="${KILN_CACHE:-$HOME/.cache/kiln}"
root="$cache/llama.cpp"
mkdir -p "$root"
cd "$root"
if [ ! -f "llama_cpp_python-$version.tar.gz" ]; then
  pip download --no-deps --no-binary llama-cpp-python -d . "llama-cpp-python==$version" >&2
fi
if [ ! -d "src-$version" ]; then
  tar xzf "llama_cpp_python-$version.tar.gz"
  mv "llama_cpp_python-$version" "src-$version"
fi
echo "$root/src-$version/vendor/llama.cpp"
