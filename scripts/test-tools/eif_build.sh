#!/usr/bin/env bash
# Installs AWS's `eif_build` (the reference EIF assembler) into $NP_CACHE/bin. The nitro-eif
# tests compare our PCRs, files and signatures against it. `--locked` is required: the packaged
# Cargo.lock pins aws-nitro-enclaves-image-format 0.3.0; without it the build fails.
# It links system OpenSSL, so it needs libssl-dev and pkg-config at build time. The same
# cross-check tests also drive Debian's openssl CLI (test keys and certificates) and umoci (a
# third-party OCI image writer); crates/eif/benches/run.sh uses cpio. They are installed here too.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$here/../env.sh"

EIF_BUILD_VERSION="0.2.1"

missing=()
for pkg in libssl-dev pkg-config openssl umoci cpio; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ -x "$NP_CACHE/bin/eif_build" ] && [ -f "$NP_CACHE/.eif_build-$EIF_BUILD_VERSION" ]; then
    exit 0
fi

mkdir -p "$NP_CACHE"
# A private target dir: this build must not contend with the workspace's.
CARGO_TARGET_DIR="$NP_CACHE/target-eif_build" \
    cargo install eif_build --version "$EIF_BUILD_VERSION" --locked --root "$NP_CACHE"
touch "$NP_CACHE/.eif_build-$EIF_BUILD_VERSION"
