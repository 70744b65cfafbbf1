#!/usr/bin/env bash
# vhost-device-vsock (the vhost-user vsock device QEMU's nitro-enclave machine talks to) from
# crates.io, with the project's CID-3 test patch (tests/fixtures/vhost-device-vsock): its
# unix-socket backend otherwise drops packets for CID 3, the Nitro parent that AWS's init dials
# for its boot heartbeat. Output: $NP_CACHE/vm/vhost-device-vsock/bin/vhost-device-vsock.
# Idempotent and keyed on its inputs; cold: about 1-2 min on 2 cores, warm: well under a second.
set -euo pipefail
# shellcheck source=vm/lib.sh
source "$(dirname "$0")/vm/lib.sh"

part=vhost-device-vsock
patch_file="$REPO_ROOT/tests/fixtures/vhost-device-vsock/nitro-cid3.patch"
key="$(vm_key "$part" "$0" "$patch_file" "str:$VHOST_DEVICE_VSOCK_VERSION" "str:$(rustc -V)")"
vm_ready "$part" "$key" && exit 0
vm_lock "$part"
vm_ready "$part" "$key" && exit 0
start=$(date +%s)
vm_log "building vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION + CID-3 patch (key $key)"
apt_ensure patch

dir="$(vm_part_dir "$part" "$key")"
work="$VM_CACHE/build-$part"
rm -rf "$dir" "$work"
mkdir -p "$dir" "$work/fetch/src"

# The crate's source through cargo's own registry client: a throwaway manifest that depends on
# exactly this version is fetched (cargo checks the download against the index checksum), then
# the .crate archive is unpacked from cargo's cache. (The crate has no library target, so
# `cargo metadata` leaves it out of the graph.)
fetch_crate() {
    cat >"$work/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-vhost-device-vsock"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
vhost-device-vsock = "=$VHOST_DEVICE_VSOCK_VERSION"
TOML
    : >"$work/fetch/src/lib.rs"
    cargo fetch --quiet --manifest-path "$work/fetch/Cargo.toml" 2>/dev/null
    local crate
    crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"vhost-device-vsock-$VHOST_DEVICE_VSOCK_VERSION.crate" 2>/dev/null | head -1)"
    [ -n "$crate" ] || vm_die "cargo did not fetch vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION"
    tar -xzf "$crate" -C "$work"
    mv "$work/vhost-device-vsock-$VHOST_DEVICE_VSOCK_VERSION" "$work/src"
}
vm_timed "fetch vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION from crates.io" fetch_crate
vm_timed "apply nitro-cid3.patch" patch --batch --forward --quiet -p1 -d "$work/src" -i "$patch_file"

install_crate() {
    local locked=()
    [ -f "$work/src/Cargo.lock" ] && locked=(--locked)
    CARGO_TARGET_DIR="$work/target" cargo install --quiet "${locked[@]}" --path "$work/src" \
        --root "$dir"
}
vm_timed "cargo install (release)" install_crate
"$dir/bin/vhost-device-vsock" --help >/dev/null
rm -rf "$work"
vm_finish "$part" "$dir" "$start"
