#!/usr/bin/env bash
# QEMU with the `nitro-enclave` machine for the local VM stack, built from Debian's qemu source
# package (with Debian's patches). Debian's binary lacks the machine: QEMU's Kconfig has
# NITRO_ENCLAVE depend on LIBCBOR && GNUTLS and Debian does not build with libcbor. Only the
# x86_64 system emulator is built, with the features the machine needs (TCG, KVM, vhost-user,
# libcbor, gnutls, fdt). Firmware (bios-microvm.bin, linuxboot_dma.bin) comes from Debian's
# seabios and qemu-system-data, found through the built-in firmware path.
# Output: $NP_CACHE/vm/qemu/bin/qemu-system-x86_64. Idempotent and keyed on its inputs; cold:
# about 4-8 min on 2 cores, warm: well under a second.
set -euo pipefail
# shellcheck source=vm/lib.sh
source "$(dirname "$0")/vm/lib.sh"

part=qemu
runtime_packages=(libcbor0.8 libfdt1 libgnutls30 libglib2.0-0 zlib1g seabios qemu-system-data)
firmware_path=/usr/share/qemu:/usr/share/seabios
key="$(vm_key "$part" "$0" "str:qemu=$QEMU_SOURCE_VERSION" "str:$QEMU_MESON_WHEEL" \
    "str:$(gcc --version | head -1)" "str:$firmware_path")"
if [ -f "$(vm_part_dir "$part" "$key")/.done" ]; then
    apt_ensure "${runtime_packages[@]}"
    vm_ready "$part" "$key" && exit 0
fi
vm_lock "$part"
vm_ready "$part" "$key" && exit 0
start=$(date +%s)
vm_log "building QEMU $QEMU_SOURCE_VERSION with the nitro-enclave machine (key $key)"

vm_timed "apt: QEMU build dependencies and firmware" apt_ensure "${runtime_packages[@]}" \
    build-essential dpkg-dev pkg-config ninja-build flex bison bzip2 xz-utils \
    libglib2.0-dev libcbor-dev libgnutls28-dev libfdt-dev zlib1g-dev

upstream="${QEMU_SOURCE_VERSION#*:}"
upstream="${upstream%-*}"
srcdl="$VM_DOWNLOADS/qemu-$QEMU_SOURCE_VERSION"
if [ ! -f "$srcdl/.complete" ]; then
    vm_timed "apt: deb-src index ($VM_SOURCE_SUITES)" vm_apt_src
    mapfile -t offered < <(apt-cache "${VM_APT_OPTS[@]}" showsrc qemu | awk '$1 == "Version:" { print $2 }')
    vm_require_version "source package" qemu "$QEMU_SOURCE_VERSION" QEMU_SOURCE_VERSION "${offered[@]}"
    rm -rf "$srcdl"
    mkdir -p "$srcdl"
    fetch_source() {
        (cd "$srcdl" && apt-get "${VM_APT_OPTS[@]}" source -qq --download-only "qemu=$QEMU_SOURCE_VERSION")
    }
    vm_timed "download the qemu $QEMU_SOURCE_VERSION source package" fetch_source
    touch "$srcdl/.complete"
fi

dir="$(vm_part_dir "$part" "$key")"
work="$VM_CACHE/build-$part"
rm -rf "$dir" "$work"
mkdir -p "$dir/bin" "$work"
src="$work/qemu"

unpack() {
    # apt checked the files against the signed Sources index; dpkg-source checks them against
    # the .dsc (its signature cannot be checked without debian-keyring: a warning, logged) and
    # applies Debian's patch series (which, among others, skips unpacking the edk2 blobs that
    # the +ds tarball does not carry).
    dpkg-source -x "$srcdl"/qemu_*.dsc "$src" >"$dir/unpack.log" 2>&1 || {
        cat "$dir/unpack.log" >&2
        return 1
    }
    # The +ds tarball ships python/wheels empty; configure needs meson >= 1.5 from there
    # (Debian 12's meson is older).
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        -d "$src/python/wheels" "$QEMU_MESON_WHEEL"
}
vm_timed "unpack the source and fetch the meson wheel" unpack

configure() {
    mkdir -p "$src/build"
    (cd "$src/build" && ../configure --target-list=x86_64-softmmu --without-default-features \
        --enable-tcg --enable-kvm --enable-vhost-user --enable-libcbor --enable-gnutls \
        --enable-fdt=system --disable-docs --disable-werror --disable-install-blobs \
        --firmwarepath="$firmware_path" >"$dir/configure.log" 2>&1) || {
        tail -30 "$dir/configure.log" >&2
        return 1
    }
    grep -q '^#define CONFIG_NITRO_ENCLAVE 1' "$src/build/x86_64-softmmu-config-devices.h" ||
        vm_die "configure did not enable CONFIG_NITRO_ENCLAVE (libcbor or gnutls missing?)"
}
vm_timed "configure (x86_64-softmmu, libcbor, gnutls)" configure

compile() {
    ninja -C "$src/build" -j"$(nproc)" qemu-system-x86_64 >"$dir/build.log" 2>&1 || {
        tail -40 "$dir/build.log" >&2
        return 1
    }
}
vm_timed "ninja qemu-system-x86_64 (log: $dir/build.log)" compile

strip -o "$dir/bin/qemu-system-x86_64" "$src/build/qemu-system-x86_64"
"$dir/bin/qemu-system-x86_64" -M help | grep -q '^nitro-enclave ' ||
    vm_die "the built QEMU has no nitro-enclave machine"
"$dir/bin/qemu-system-x86_64" --version | head -1 >"$dir/version"
rm -rf "$work"
vm_finish "$part" "$dir" "$start"
