#!/usr/bin/env bash
# Median wall time of `plan --offline` on the bundled example (target < 50 ms on 2 cores).
# Prints hyperfine's summary; installs hyperfine from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
cargo build --release -p nitro-provision --locked
bin="$CARGO_TARGET_DIR/release/nitro-provision"
hyperfine --warmup 5 --runs 50 --export-json "${BENCH_JSON:-/tmp/bench-plan.json}" \
  "$bin -f enclave.yaml.example plan --offline" \
  "$bin -f enclave.yaml.example plan --offline --json"
python3 - "${BENCH_JSON:-/tmp/bench-plan.json}" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"median {r['median']*1000:.1f} ms  ({r['command'].split(' ', 1)[1]})")
PY
