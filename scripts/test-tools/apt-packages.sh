#!/usr/bin/env bash
# Debian packages the tests drive or build with: openssl (test keys, certificates and signature
# checks), umoci (a third-party OCI image writer), cpio (the benchmark's baseline), and
# libssl-dev + pkg-config (to build AWS's eif_build). Idempotent: installs only what is missing.
set -euo pipefail
# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
apt_ensure openssl umoci cpio libssl-dev pkg-config
