#!/usr/bin/env bash
# Sets up the Python environment that the reference-generating scripts run in, and prints
# lines to `eval`: a venv with numpy and gguf (the Python `gguf` package's dequantizer), and
# llama-cpp-python's bindings pointed at the llama.cpp that scripts/build-llama-cpp.sh built.
#   eval "$(scripts/ref-env.sh)"; python scripts/gen-....py
set -euo pipefail
cache="${KILN_CACHE:-$HOME/.cache/kiln}"
venv="$cache/ref-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet numpy gguf diskcache jinja2 typing-extensions >&2
fi
bin=$(scripts/build-llama-cpp.sh)
src=$(ls -d "$cache"/llama.cpp/src-*/ | head -n 1)
echo "export PATH=\"$venv/bin:\$PATH\""
echo "export PYTHONPATH=\"$src\${PYTHONPATH:+:\$PYTHONPATH}\""
echo "export LLAMA_CPP_LIB_PATH=\"$bin\""
echo "export LLAMA_CPP_BIN=\"$bin\""
