#!/usr/bin/env bash
# The enclave kernel for the local VM stack: Debian's patched linux-source-6.12 built with AWS's
# enclave kernel config (tests/fixtures/aws-bootstrap) plus what AWS's init needs on 6.12
# (CONFIG_NSM=m for /dev/nsm; MEMCG_V1/CPUSETS_V1, without which init's cgroup v1 mounts of
# cpuset and memory fail and it panics). Output: $NP_CACHE/vm/kernel/{bzImage,bzImage.config,nsm.ko}.
# Reproducible build environment (fixed timestamp, user, host and build number). Idempotent and
# keyed on its inputs; cold: about 13 min on 2 idle cores, warm: well under a second.
set -euo pipefail
# shellcheck source=vm/lib.sh
source "$(dirname "$0")/vm/lib.sh"

part=kernel
config="$REPO_ROOT/tests/fixtures/aws-bootstrap/kernel/microvm-kernel-config-x86_64"
key="$(vm_key "$part" "$0" "$config" "str:$LINUX_SOURCE_PACKAGE=$LINUX_SOURCE_VERSION" \
    "str:$(gcc --version | head -1)" "str:$(ld --version | head -1)")"
vm_ready "$part" "$key" && exit 0
vm_lock "$part"
vm_ready "$part" "$key" && exit 0
start=$(date +%s)
vm_log "building the enclave kernel ($LINUX_SOURCE_PACKAGE $LINUX_SOURCE_VERSION, key $key)"

vm_timed "apt: kernel build dependencies" \
    apt_ensure build-essential bc bison flex libelf-dev libssl-dev xz-utils

deb="$VM_DOWNLOADS/${LINUX_SOURCE_PACKAGE}_${LINUX_SOURCE_VERSION//:/%3a}_all.deb"
if [ ! -f "$deb" ]; then
    apt-get update -qq
    mapfile -t offered < <(apt-cache madison "$LINUX_SOURCE_PACKAGE" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
    vm_require_version package "$LINUX_SOURCE_PACKAGE" "$LINUX_SOURCE_VERSION" LINUX_SOURCE_VERSION "${offered[@]}"
    download() {
        (cd "$VM_DOWNLOADS" && apt-get download -qq -o APT::Sandbox::User=root "$LINUX_SOURCE_PACKAGE=$LINUX_SOURCE_VERSION")
    }
    vm_timed "download $LINUX_SOURCE_PACKAGE $LINUX_SOURCE_VERSION" download
    rm -f "$VM_DOWNLOADS/${LINUX_SOURCE_PACKAGE}"_*.deb.tmp
    [ -f "$deb" ] || vm_die "apt-get download did not produce $deb"
fi

dir="$(vm_part_dir "$part" "$key")"
work="$VM_CACHE/build-$part"
rm -rf "$dir" "$work"
mkdir -p "$dir" "$work"

unpack() {
    dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$LINUX_SOURCE_PACKAGE.tar.xz" | tar -xJ -C "$work"
}
vm_timed "unpack the kernel source" unpack
src="$work/$LINUX_SOURCE_PACKAGE"
[ -d "$src" ] || vm_die "no $LINUX_SOURCE_PACKAGE/ in $deb"

# The reproducible build environment: every value the kernel embeds about its build.
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 1970"
export KBUILD_BUILD_USER=nitro-provision
export KBUILD_BUILD_HOST=nitro-provision
export KBUILD_BUILD_VERSION=1
export LC_ALL=C

configure() {
    cp "$config" "$src/.config"
    printf '%s\n' CONFIG_NSM=m CONFIG_MEMCG_V1=y CONFIG_CPUSETS_V1=y >>"$src/.config"
    make -C "$src" -s olddefconfig
    local want
    for want in CONFIG_NSM=m CONFIG_MEMCG_V1=y CONFIG_CPUSETS_V1=y CONFIG_VSOCKETS=y \
        CONFIG_VIRTIO_VSOCKETS=y CONFIG_VIRTIO_MMIO=y CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y; do
        grep -qx "$want" "$src/.config" || vm_die "olddefconfig dropped $want"
    done
}
vm_timed "configure (AWS enclave config + NSM=m, MEMCG_V1, CPUSETS_V1)" configure

compile() {
    make -C "$src" -j"$(nproc)" bzImage modules >"$dir/build.log" 2>&1 || {
        tail -40 "$dir/build.log" >&2
        return 1
    }
}
vm_timed "make -j$(nproc) bzImage modules (log: $dir/build.log)" compile

cp "$src/arch/x86/boot/bzImage" "$dir/bzImage"
cp "$src/.config" "$dir/bzImage.config"
cp "$src/drivers/misc/nsm.ko" "$dir/nsm.ko"
tr -c "[:print:]" "\n" <"$dir/nsm.ko" | sed -n "s/^vermagic=//p" >"$dir/vermagic"
[ -s "$dir/vermagic" ] || vm_die "nsm.ko has no vermagic"
vm_log "nsm.ko vermagic: $(cat "$dir/vermagic")"
rm -rf "$work"
vm_finish "$part" "$dir" "$start"
