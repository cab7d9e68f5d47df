#!/usr/bin/env bash
# End-to-end tests of `kiln serve` with the official `ollama` and `openai` Python clients.
# Builds kiln, fetches the test models (cached), starts a test registry (tests/e2e/registry.py,
# speaking Ollama's registry protocol and Hugging Face's, serving the real SmolLM2 file), starts
# the server on a free port with an empty temporary library pointed at that registry, runs
# tests/e2e with pytest, and stops both.
# Extra arguments go to pytest (e.g. -k chat).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${KILN_CACHE:-$HOME/.cache/kiln}"
py="${PYTHON:-python3}"

venv="$cache/e2e-venv"
if [ ! -x "$venv/bin/pytest" ] || ! "$venv/bin/python" -c "import ollama, openai, httpx, pytest" 2>/dev/null; then
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet ollama openai pytest httpx
fi

cargo build --release --locked -p kiln
target="${CARGO_TARGET_DIR:-target}"
kiln="$target/release/kiln"

smollm2=$(scripts/fetch-models.sh smollm2)
gemma3=$(scripts/fetch-models.sh gemma3)
# The embedding model, as the Rust tests find it (kiln-testdata's minilm_gguf).
minilm=$(scripts/make-minilm-gguf.sh)

workdir=$(mktemp -d)
server_pid=""
registry_pid=""
cleanup() {
  for pid in $server_pid $registry_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$workdir"
}
trap cleanup EXIT

"$venv/bin/python" tests/e2e/registry.py "$smollm2" "$workdir/registry-url" &
registry_pid=$!
for _ in $(seq 1 100); do
  [ -s "$workdir/registry-url" ] && break
  sleep 0.1
done
registry=$(cat "$workdir/registry-url")

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
library="$workdir/library"
KILN_HOST="127.0.0.1:$port" KILN_MODELS="$library" KILN_REGISTRY="$registry" HF_ENDPOINT="$registry" \
  "$kiln" serve --model "smollm2=$smollm2" --model "gemma3=$gemma3" --model "named=$smollm2" --model "minilm=$minilm" \
  >"$workdir/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
  if "$py" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "http://127.0.0.1:$port/" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$workdir/server.log" >&2
    echo "kiln serve exited early" >&2
    exit 1
  fi
  sleep 0.2
done

status=0
KILN_URL="http://127.0.0.1:$port" KILN_BIN="$kiln" KILN_SMOLLM2="$smollm2" KILN_MODELS="$library" \
  KILN_REGISTRY="$registry" \
  "$venv/bin/pytest" -q tests/e2e "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- server log ---" >&2
  tail -n 50 "$workdir/server.log" >&2
fi
exit "$status"
