#!/usr/bin/env bash
# Installs AWS's `eif_build` (the reference EIF assembler) into $NP_CACHE/bin. The nitro-eif
# tests compare our PCRs, files and signatures against it. `--locked` is required: the packaged
# Cargo.lock pins aws-nitro-enclaves-image-format 0.3.0; without it the build fails.
# It links system OpenSSL: libssl-dev and pkg-config come from apt-packages.sh (run first).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$here/../env.sh"

EIF_BUILD_VERSION="0.2.1"

bash "$here/apt-packages.sh"

if [ -x "$NP_CACHE/bin/eif_build" ] && [ -f "$NP_CACHE/.eif_build-$EIF_BUILD_VERSION" ]; then
    exit 0
fi

mkdir -p "$NP_CACHE"
# A private target dir: this build must not contend with the workspace's.
CARGO_TARGET_DIR="$NP_CACHE/target-eif_build" \
    cargo install eif_build --version "$EIF_BUILD_VERSION" --locked --root "$NP_CACHE"
touch "$NP_CACHE/.eif_build-$EIF_BUILD_VERSION"
