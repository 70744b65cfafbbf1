#!/usr/bin/env bash
# The x86_64 musl target, for static binaries that run inside enclave images (the QEMU boot
# test's guest program). Idempotent: a no-op when rustup already has it.
set -euo pipefail
target=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
