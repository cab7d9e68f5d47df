#!/usr/bin/env bash
# Regenerates the seed corpus in fuzz/seeds/gguf_parse from the test builder.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet -p kiln-gguf --example make_fuzz_seeds -- fuzz/seeds/gguf_parse
