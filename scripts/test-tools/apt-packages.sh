#!/usr/bin/env bash
# Debian packages the tests drive or build with: openssl (test keys, certificates and signature
# checks), umoci (a third-party OCI image writer), cpio (the benchmark's baseline),
# libssl-dev + pkg-config (to build AWS's eif_build) and systemd (systemd-analyze verify of the
# supervisor's unit). Idempotent: installs only what is missing.
set -euo pipefail
# shellcheck source=lib/apt.sh
source "$(dirname "$0")/lib/apt.sh"
apt_ensure openssl umoci cpio libssl-dev pkg-config systemd
