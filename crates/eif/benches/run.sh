#!/usr/bin/env bash
# EIF build benchmark (issues 3, 11): a generated OCI image (default 320 MiB in 24,000 files,
# four layers, uncompressed or gzip) is built into an EIF. Reports build wall time ÷ one
# `openssl dgst -sha384` pass over the EIF (the fastest SHA-384 on the machine; targets ≤ 1.5
# plain, ≤ 2.0 gzip) and ÷ `sha384sum`, peak RSS (target < 100 MiB), and the same for the
# Docker-free script a user would write today: tar extraction + `cpio -o -H newc
# --reproducible` + AWS's `eif_build`.
#
# Each command runs once to warm up, then RUNS times (default 5); medians are reported, with
# every run's wall time, because writing fresh page-cache pages costs 0.1–1 s more on some VMs
# from one run to the next (the system time column shows it).
# `umoci` packs compressible files (text-like, ~3x) into one gzip layer with umoci, as real
# images are; `gzip` compresses the generated (random, incompressible) layers.
# Usage: crates/eif/benches/run.sh [MIB] [FILES] [plain|gzip|umoci]
# FEATURES=aws-lc measures AWS-LC's SHA-384; the default is pure-Rust sha2 (as the CLI).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
source "$root/scripts/env.sh"
bash "$root/scripts/test-tools/eif_build.sh"
command -v cpio >/dev/null || { apt-get update && apt-get install -y --no-install-recommends cpio; }
mib="${1:-320}"; files="${2:-24000}"; compression="${3:-plain}"; runs="${RUNS:-5}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
# The driver cargo built (not the newest build_eif-* file: one of another profile or feature
# set may be newer).
bin="$(cargo build --release -p nitro-eif --features "${FEATURES-}" --bench build_eif --message-format=json | grep -o '"executable":"[^"]*build_eif[^"]*"' | tail -1 | cut -d'"' -f4)"

if [ "$compression" = umoci ]; then
    # As the issue's image: compressible files packed by umoci into one gzip layer.
    command -v umoci >/dev/null || { apt-get update && apt-get install -y --no-install-recommends umoci; }
    "$bin" gen "$work" "$mib" "$files" umoci
    umoci init --layout "$work/image"
    umoci new --image "$work/image:latest"
    umoci insert --image "$work/image:latest" "$work/rootfs/data" /data >/dev/null
    umoci config --image "$work/image:latest" --config.cmd /bin/true
    rm -rf "$work/rootfs"
    # The layer blob is the largest; the baseline extracts it like the generated layers.
    ln -s "$(ls -S "$work"/image/blobs/sha256/* | head -1)" "$work/layer0.tar"
    layers="1 gzip layer (umoci, $(( $(stat -L -c %s "$work/layer0.tar") >> 20 )) MiB compressed)"
else
    "$bin" gen "$work" "$mib" "$files" "$compression"
    layers="4 ${compression} layers"
fi
sync

# Runs a command (warm-up + $runs times); prints median wall s, median CPU s, max RSS KiB,
# median system s, and the list of wall times.
measure() {
    "$@" >/dev/null 2>&1
    : >"$work/runs"
    for _ in $(seq "$runs"); do
        /usr/bin/time -f '%e %U %S %M' -o "$work/t" "$@" >/dev/null 2>&1
        cat "$work/t" >>"$work/runs"
    done
    local m=$(( (runs + 1) / 2 ))
    col() { awk "{ print $1 }" "$work/runs" | sort -n | sed -n "${m}p"; }
    printf '%s %s %s %s %s\n' "$(col '$1')" "$(col '$2 + $3')" "$(awk '{ print $4 }' "$work/runs" | sort -n | tail -1)" \
        "$(col '$3')" "$(awk '{ printf " %s", $1 }' "$work/runs")"
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
read -r ours_s ours_cpu ours_kb ours_sys ours_all < <(measure "$bin" build "$work" "$work/ours.eif")
read -r hash_s hash_cpu _ _ hash_all < <(measure sha384sum "$work/ours.eif")
read -r ossl_s ossl_cpu _ _ ossl_all < <(measure openssl dgst -sha384 "$work/ours.eif")

# Baseline: extract, cpio (both ramdisks), eif_build.
baseline() {
    rm -rf "$work/boot" "$work/rd"
    mkdir -p "$work/boot/dev" && cp "$work/init" "$work/nsm.ko" "$work/boot/"
    (cd "$work/boot" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet >"$work/bootstrap.cpio")
    mkdir -p "$work/rd/rootfs"/{dev,run,sys,var,proc,tmp}
    for l in "$work"/layer*.tar; do tar -xf "$l" -C "$work/rd/rootfs"; done
    printf '/bin/true\n' >"$work/rd/cmd"; printf 'PATH=/bin\n' >"$work/rd/env"
    (cd "$work/rd" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet >"$work/customer.cpio")
    eif_build --kernel "$work/bzImage" --cmdline console=ttyS0 --ramdisk "$work/bootstrap.cpio" \
        --ramdisk "$work/customer.cpio" --output "$work/theirs.eif" --build-time 1970-01-01T00:00:00+00:00 >/dev/null
}
export -f baseline; export work
runs=1 read -r base_s base_cpu base_kb _ _ < <(runs=1 measure bash -c baseline)

eif_mib=$(( $(stat -c %s "$work/ours.eif") >> 20 ))
echo "image: ${mib} MiB in ${files} files, ${layers}; EIF ${eif_mib} MiB; median of ${runs} runs after a warm-up"
echo "nitro-eif build:  ${ours_s} s wall (runs:${ours_all}), ${ours_cpu} s CPU (${ours_sys} s system), peak RSS $((ours_kb / 1024)) MiB"
echo "openssl dgst -sha384 of EIF: ${ossl_s} s wall (runs:${ossl_all}), ${ossl_cpu} s CPU"
echo "sha384sum of EIF: ${hash_s} s wall (runs:${hash_all}), ${hash_cpu} s CPU"
echo "ratio build/openssl: wall $(echo "scale=2; $ours_s / $ossl_s" | bc), CPU $(echo "scale=2; $ours_cpu / $ossl_cpu" | bc)"
echo "ratio build/sha384sum: wall $(echo "scale=2; $ours_s / $hash_s" | bc), CPU $(echo "scale=2; $ours_cpu / $hash_cpu" | bc)"
echo "baseline tar+cpio+eif_build: ${base_s} s wall, ${base_cpu} s CPU, peak RSS $((base_kb / 1024)) MiB"
echo "ratio ours/baseline: wall $(echo "scale=2; $ours_s / $base_s" | bc)"
echo "cores: $(nproc); load average before: ${load_before}; after the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other processes skew wall times)"
