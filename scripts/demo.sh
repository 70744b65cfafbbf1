#!/usr/bin/env bash
# The README's first command: builds the workspace's binaries into the target directory
# scripts/test.sh uses (scripts/env.sh's CARGO_TARGET_DIR, in the cache), so the test command
# reuses this build instead of compiling the workspace a second time into ./target; then runs
# nitro-provision on the bundled example. Arguments go to nitro-provision (default:
# `plan --offline`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
[ "$#" -gt 0 ] || set -- plan --offline
cargo build --workspace --bins --locked
exec "$CARGO_TARGET_DIR/debug/nitro-provision" -f enclave.yaml.example "$@"
