#!/usr/bin/env bash
# Supervisor memory: runs the static release binary (x86_64 musl, as deployed) against the
# stand-in nitro-cli with a fast poll (200 ms, 25x production's), lets it idle with a healthy
# enclave (its runtime played over the unix link's control service) and the link services
# bound, then serves 2,000 API reads (enclave-info + metrics). Prints VmRSS / VmHWM.
# Usage: supervisor/benches/rss.sh [IDLE_SECONDS]   (default 10)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$root/scripts/env.sh"
idle="${1:-10}"
cd "$root"
cargo build --quiet -p enclave-supervisor --bin fake-nitro-cli -p nitro-provision --bin nitro-provision
bash scripts/build-companions.sh --out "$NP_CACHE/companions" \
  --target x86_64-unknown-linux-musl --bin enclave-supervisor >/dev/null
supervisor="$NP_CACHE/companions/x86_64-unknown-linux-musl/enclave-supervisor"
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
  for r in "$work"/fake/enclaves/*.json; do
    [ -e "$r" ] && kill -9 "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ProcessID"])' "$r")" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
blobs=examples/blobs-standin
"$CARGO_TARGET_DIR/debug/nitro-provision" eif assemble --kernel "$blobs/bzImage" \
  --cmdline "$(cat "$blobs/cmdline")" --ramdisk "$blobs/init" --output "$work/demo.eif" > "$work/m.json"
mkdir -p "$work/bin" "$work/fake"
ln -s "$CARGO_TARGET_DIR/debug/fake-nitro-cli" "$work/bin/nitro-cli"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
m = json.load(open(f"{w}/m.json"))["Measurements"]
json.dump({
  "format_version": 1, "deployment": "demo", "region": "us-east-1",
  "eif_path": f"{w}/demo.eif",
  "enclave": {"cpu_count": 2, "memory_mib": 512, "cid": 16, "debug": False},
  "listen": "127.0.0.1:0",
  "watchdog": {"backoff_min_secs": 1, "backoff_max_secs": 60, "boot_grace_secs": 3600,
               "poll_interval_ms": 200, "stable_secs": 120},
  "proxies": [], "log_group": "/nitro-provision/demo",
  "logging": {"level": "info", "format": "json"},
  "expected_measurements": {k: m[k] for k in ("PCR0", "PCR1", "PCR2")},
  "state_dir": f"{w}/state",
  "nitro_cli": {"describe_timeout_secs": 10, "terminate_timeout_secs": 30, "run_timeout_secs": None},
  "link": {"transport": {"type": "unix", "listen_prefix": f"{w}/parent", "connect_prefix": f"{w}/enclave"},
           "ingress": {"listen": "127.0.0.1"}},
}, open(f"{w}/supervisor.json", "w"))
PY
PATH="$work/bin:$PATH" FAKE_NITRO_CLI_DIR="$work/fake" \
  "$supervisor" --config "$work/supervisor.json" 2> "$work/log" &
pid=$!
python3 - "$work" "$pid" "$idle" <<'PY'
import json, socket, sys, time, urllib.request
w, pid, idle = sys.argv[1], sys.argv[2], float(sys.argv[3])
def status():
    f = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
    return {k: f[k].strip() for k in ("VmRSS", "VmHWM")}
port = None
for _ in range(500):
    for line in open(f"{w}/log"):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("message") == "management API listening":
            port = int(v["listen"].rsplit(":", 1)[1])
    if port: break
    time.sleep(0.02)
base = f"http://127.0.0.1:{port}"
def get(path):
    try:
        return urllib.request.urlopen(base + path, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code
for _ in range(500):
    if json.load(urllib.request.urlopen(base + "/v1/enclave-info"))["state"] == "booting": break
    time.sleep(0.02)
# Play the runtime on the unix link: one control frame (version 1, kind 0x12 = ready, two
# reserved zero bytes, u32 big-endian length) on the control port 65537; stay connected.
s = socket.socket(socket.AF_UNIX); s.connect(f"{w}/parent_65537")
s.sendall(bytes([1, 0x12, 0, 0]) + (2).to_bytes(4, "big") + b"{}")
for _ in range(500):
    if get("/health") == 200: break
    time.sleep(0.02)
time.sleep(idle)
print(f"idle, healthy enclave, {idle:.0f} s of 200 ms polls: {status()}")
t = time.time()
for i in range(1000):
    get("/v1/enclave-info"); get("/metrics")
print(f"after 2,000 API reads in {time.time() - t:.1f} s: {status()}")
PY
