#!/usr/bin/env bash
# Serving throughput and latency of Kiln and llama.cpp's llama-server side by side, measured by
# one client (`kiln bench serve`) with the same prompts, the same model file (SmolLM2-135M-Instruct
# Q4_1) and the same thread count. Prints markdown tables (ratios are Kiln / llama-server).
#   scripts/bench-serve-vs-llama-server.sh [levels] [kiln bench serve flags...]
#   e.g. scripts/bench-serve-vs-llama-server.sh 1,4,8,16,32
#        scripts/bench-serve-vs-llama-server.sh 1,4 --max-tokens 32
# Levels default to 1,4,8,16,32. Each level starts a fresh server of each kind, one after the
# other so machine noise hits both alike: llama-server with --parallel N and continuous batching,
# kiln serve with KILN_NUM_PARALLEL=N. Then both get the shared-prefix test on a fresh server.
# Environment: THREADS (default 2), CTX_PER_SLOT (default 2048), PREFIX_TOKENS (default 1000).
# Needs scripts/build-llama-cpp.sh (run by this script; about 13 minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
levels="${1:-1,4,8,16,32}"
shift || true
flags=("$@")
threads="${THREADS:-2}"
ctx="${CTX_PER_SLOT:-2048}"
prefix="${PREFIX_TOKENS:-1000}"

bin=$(scripts/build-llama-cpp.sh)
cargo build --release --locked -p kiln >&2
kiln="${CARGO_TARGET_DIR:-target}/release/kiln"
model=$(scripts/fetch-models.sh smollm2)

out=$(mktemp -d)
log="$out/server.log"
pid=""
port=""
stop_server() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
}
trap 'stop_server; rm -rf "$out"' EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() { # url
  for _ in $(seq 1200); do
    if curl -sf -o /dev/null "$1"; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the server exited; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "the server was not ready after 120 s; its log:" >&2
  cat "$log" >&2
  exit 1
}

start_llama() { # parallel
  port=$(free_port)
  LD_LIBRARY_PATH="$bin" "$bin/llama-server" -m "$model" -a smollm2 --host 127.0.0.1 --port "$port" \
    -t "$threads" --parallel "$1" -c $(($1 * ctx)) --cont-batching --no-webui >"$log" 2>&1 &
  pid=$!
  wait_ready "http://127.0.0.1:$port/health"
}

start_kiln() { # parallel
  port=$(free_port)
  # An empty library of its own, so only the model file is served.
  mkdir -p "$out/library"
  KILN_NUM_PARALLEL="$1" KILN_MODELS="$out/library" "$kiln" serve --host "127.0.0.1:$port" \
    --model "smollm2=$model" -t "$threads" >"$log" 2>&1 &
  pid=$!
  wait_ready "http://127.0.0.1:$port/api/version"
}

run() { # server name, parallel, result name, bench flags...
  local server=$1 parallel=$2 name=$3
  shift 3
  echo "$server: $name" >&2
  "start_$server" "$parallel"
  "$kiln" bench serve --url "http://127.0.0.1:$port" --model smollm2 -o json "$@" \
    ${flags[@]+"${flags[@]}"} >"$out/$server-$name.json"
  stop_server
}

for n in ${levels//,/ }; do
  for server in llama kiln; do
    run "$server" "$n" "level-$n" --concurrency "$n"
  done
done
for server in llama kiln; do
  run "$server" 1 prefix --concurrency 0 --shared-prefix "$prefix"
done

python3 - "$out" "$levels" <<'PY'
import json, os, sys
out, levels = sys.argv[1], [int(n) for n in sys.argv[2].split(",")]
load = lambda who, name: json.load(open(os.path.join(out, f"{who}-{name}.json")))
ms = lambda v: "-" if v is None else f"{v:.1f}"
pair = lambda l, key: f"{ms(l[key + '_p50_ms'])} / {ms(l[key + '_p99_ms'])}"
print("| concurrency | llama-server tok/s | Kiln tok/s | Kiln / llama-server "
      "| TTFT p50 / p99 ms llama-server | TTFT p50 / p99 ms Kiln "
      "| ITL p50 / p99 ms llama-server | ITL p50 / p99 ms Kiln | errors llama-server / Kiln |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in levels:
    l, k = load("llama", f"level-{n}")["levels"][0], load("kiln", f"level-{n}")["levels"][0]
    ratio = f"{k['tokens_per_s'] / l['tokens_per_s']:.2f}×" if l["tokens_per_s"] else "-"
    print(f"| {n} | {l['tokens_per_s']:.1f} | {k['tokens_per_s']:.1f} | {ratio} | {pair(l, 'ttft')} | {pair(k, 'ttft')} "
          f"| {pair(l, 'itl')} | {pair(k, 'itl')} | {l['errors']} / {k['errors']} |")
print()
print("| shared prefix | server | prompt tokens | TTFT A ms | TTFT B ms | B / A |")
print("| ---: | --- | ---: | ---: | ---: | ---: |")
for who, label in (("llama", "llama-server"), ("kiln", "Kiln")):
    p = load(who, "prefix")["shared_prefix"]
    if "error" in p:
        print(f"| - | {label} | failed: {p['error']} | | | |")
    else:
        tokens = "-" if p["prompt_tokens"] is None else p["prompt_tokens"]
        print(f"| {p['target_tokens']} | {label} | {tokens} | {p['ttft_a_ms']:.1f} | {p['ttft_b_ms']:.1f} "
              f"| {p['ratio']:.2f} |")
PY
