#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one: installs every external tool the tests
# drive (scripts/test-tools/*.sh, idempotent, cached in $NP_CACHE), then runs cargo test.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
for tool in scripts/test-tools/*.sh; do
  echo "== test tool: $(basename "$tool" .sh)"
  bash "$tool"
done
echo "== static companion binaries (x86_64 + aarch64 musl, reproducibility checked)"
bash scripts/build-companions.sh --out "$NP_CACHE/companions" --verify-reproducible
export NP_COMPANIONS="$NP_CACHE/companions"
cargo test --workspace --locked "$@"
