#!/usr/bin/env bash
# Debian packages the tests drive or build with: openssl (test keys, certificates and signature
# checks), umoci (a third-party OCI image writer), cpio (the benchmark's baseline),
# libssl-dev + pkg-config (to build AWS's eif_build) and systemd (systemd-analyze verify of the
# supervisor's unit). Idempotent: installs only what is missing.
set -euo pipefail
missing=()
for pkg in openssl umoci cpio libssl-dev pkg-config systemd; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
