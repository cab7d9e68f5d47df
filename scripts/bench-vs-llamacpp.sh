#!/usr/bin/env bash
# Side-by-side speed of Kiln and llama.cpp's llama-bench: same machine, same run, same model
# files, same thread counts. Prints a markdown table with the ratios (Kiln / llama.cpp).
#   scripts/bench-vs-llamacpp.sh [repetitions]     (default 5)
# Needs scripts/build-llama-cpp.sh (run by this script; about 13 minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${1:-5}"
bin=$(scripts/build-llama-cpp.sh)
cargo build --release --locked -p kiln >&2
out=$(mktemp -d)
for model in $(scripts/fetch-models.sh all); do
  name=$(basename "$model" .gguf)
  for t in 1 2; do
    # Interleave the two programs per thread count so machine noise hits both alike.
    LD_LIBRARY_PATH="$bin" "$bin/llama-bench" -m "$model" -p 512 -n 128 -t "$t" -r "$reps" -o json \
      > "$out/llama-$name-$t.json" 2>/dev/null
    target/release/kiln bench "$model" -p 512 -n 128 -t "$t" -r "$reps" -o json > "$out/kiln-$name-$t.json"
  done
done
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    who, rest = os.path.basename(path).split("-", 1)
    name = rest.rsplit("-", 1)[0]
    for rec in json.load(open(path)):
        test = f"pp{rec['n_prompt']}" if rec["n_prompt"] else f"tg{rec['n_gen']}"
        rows.setdefault((name, rec["n_threads"], test), {})[who] = (rec["avg_ts"], rec["stddev_ts"])
print("| model | threads | test | llama.cpp t/s | Kiln t/s | Kiln / llama.cpp |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for (name, t, test), r in sorted(rows.items()):
    if "llama" in r and "kiln" in r:
        (l, ls), (k, ks) = r["llama"], r["kiln"]
        print(f"| {name} | {t} | {test} | {l:.1f} ± {ls:.1f} | {k:.1f} ± {ks:.1f} | {k / l:.2f}× |")
PY
rm -rf "$out"
