# Versions of the local VM stack (QEMU nitro-enclave machine, vhost-device-vsock, enclave kernel).
# Every value is part of its part's cache key: changing one rebuilds that part on the next run.
# Debian drops superseded versions from its archive; the scripts then stop with a message naming
# the variable to update here (NP_<VARIABLE> overrides one for a single run).
# shellcheck shell=bash

# QEMU >= 9.2 has the nitro-enclave machine; Debian builds it without libcbor, so the machine is
# missing from Debian's binary and we build the source package ourselves.
QEMU_SOURCE_VERSION="${NP_QEMU_SOURCE_VERSION:-1:10.0.13+ds-0+deb13u1}"
# The source suites searched for the QEMU source package (private deb-src list).
VM_SOURCE_SUITES="trixie"
# configure needs meson >= 1.5 as a wheel: Debian's orig tarball (+ds) ships python/wheels empty.
QEMU_MESON_WHEEL="meson==1.5.0"
QEMU_PYCOTAP_WHEEL="pycotap==1.3.1"

# The enclave kernel: Debian's patched 6.12 source, built with AWS's enclave kernel config.
LINUX_SOURCE_PACKAGE="linux-source-6.12"
LINUX_SOURCE_VERSION="${NP_LINUX_SOURCE_VERSION:-6.12.117-1~deb12u1}"

# The vhost-user vsock device (unix-socket backend), from crates.io, with the CID-3 patch.
VHOST_DEVICE_VSOCK_VERSION="${NP_VHOST_DEVICE_VSOCK_VERSION:-0.3.0}"
