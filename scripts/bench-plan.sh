#!/usr/bin/env bash
# Benchmarks of the main job, printed as numbers (never a timed test):
#   1. `plan --offline` on the bundled example: warm (EIF reused by input fingerprint) and cold
#      (build cache removed before each run). Target: median < 50 ms on 2 cores.
#   2. `plan` with no changes against a local moto server: median wall time (target < 2 s,
#      EIF build excluded: the cache is warm) and the number of AWS calls one plan makes.
# Installs hyperfine (Debian) and the test venv (moto) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
bash scripts/test-tools/python-venv.sh
cargo build --release --locked -p nitro-provision -p enclave-runtime -p enclave-supervisor
bin="$CARGO_TARGET_DIR/release/nitro-provision"
work=$(mktemp -d)
trap 'kill $(cat "$work/moto.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
cp enclave.yaml.example "$work/enclave.yaml"
sed -i "s|rootfs:examples/|rootfs:$PWD/examples/|; s|dir: examples/|dir: $PWD/examples/|" "$work/enclave.yaml"
cfg="$work/enclave.yaml"

echo "== plan --offline (warm: EIF reused by input fingerprint)"
hyperfine -N --warmup 3 --runs 30 --export-json "$work/offline-warm.json" "$bin -f $cfg plan --offline"
echo "== plan --offline (cold: EIF built every run)"
hyperfine -N --warmup 1 --runs 15 --prepare "rm -rf $work/.nitro-provision" --export-json "$work/offline-cold.json" "$bin -f $cfg plan --offline"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$NP_CACHE/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 & echo $! >"$work/moto.pid"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null && break; sleep 0.2; done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true NITRO_PROVISION_POLL_MS=200
"$bin" -f "$cfg" apply --yes >/dev/null 2>&1
before=$(grep -c '"POST \|"GET \|"HEAD \|"PUT ' "$work/moto.log" || true)
"$bin" -f "$cfg" plan >/dev/null
after=$(grep -c '"POST \|"GET \|"HEAD \|"PUT ' "$work/moto.log" || true)
echo "== plan against moto with no changes"
hyperfine -N --warmup 2 --runs 15 --export-json "$work/online.json" "$bin -f $cfg plan"
python3 - "$work" "$((after - before))" <<'PY'
import json, sys
work, calls = sys.argv[1], sys.argv[2]
for name, label in [("offline-warm", "plan --offline, warm"), ("offline-cold", "plan --offline, cold build"), ("online", "plan vs moto, no changes")]:
    r = json.load(open(f"{work}/{name}.json"))["results"][0]
    print(f"RESULT {label}: median {r['median']*1000:.1f} ms (min {r['min']*1000:.1f}, max {r['max']*1000:.1f})")
print(f"RESULT AWS calls per no-change plan: {calls}")
PY
