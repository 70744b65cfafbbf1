#!/usr/bin/env bash
# EIF build benchmark (issue 3): a generated OCI image (default 320 MiB in 24,000 files, four
# uncompressed layers) is built into an EIF. Reports build wall time ÷ `sha384sum` of the EIF
# (target ≤ 1.5), peak RSS (target < 100 MiB), and the same for the Docker-free script a user
# would write today: tar extraction + `cpio -o -H newc --reproducible` + AWS's `eif_build`.
# Usage: crates/eif/benches/run.sh [MIB] [FILES]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
source "$root/scripts/env.sh"
bash "$root/scripts/test-tools/eif_build.sh"
command -v cpio >/dev/null || { apt-get update && apt-get install -y --no-install-recommends cpio; }
mib="${1:-320}"; files="${2:-24000}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cargo build --release -p nitro-eif --bench build_eif --quiet
bin="$(ls -t "$CARGO_TARGET_DIR"/release/deps/build_eif-* | grep -v '\.d$' | head -1)"

"$bin" gen "$work" "$mib" "$files"
sync
# Prints: wall seconds, CPU seconds (user+sys), peak RSS in KiB.
secs() {
    /usr/bin/time -f '%e %U %S %M' -o "$work/t" "$@" >/dev/null
    awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$work/t"
}

read -r ours_s ours_cpu ours_kb < <(secs "$bin" build "$work" "$work/ours.eif")
read -r hash_s hash_cpu _ < <(secs sha384sum "$work/ours.eif")

# Baseline: extract, cpio (both ramdisks), eif_build.
baseline() {
    mkdir -p "$work/boot/dev" && cp "$work/init" "$work/nsm.ko" "$work/boot/"
    (cd "$work/boot" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet >"$work/bootstrap.cpio")
    mkdir -p "$work/rd/rootfs"/{dev,run,sys,var,proc,tmp}
    for l in 0 1 2 3; do tar -xf "$work/layer$l.tar" -C "$work/rd/rootfs"; done
    printf '/bin/true\n' >"$work/rd/cmd"; printf 'PATH=/bin\n' >"$work/rd/env"
    (cd "$work/rd" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet >"$work/customer.cpio")
    eif_build --kernel "$work/bzImage" --cmdline console=ttyS0 --ramdisk "$work/bootstrap.cpio" \
        --ramdisk "$work/customer.cpio" --output "$work/theirs.eif" --build-time 1970-01-01T00:00:00+00:00 >/dev/null
}
export -f baseline; export work
read -r base_s base_cpu base_kb < <(secs bash -c baseline)

eif_mib=$(( $(stat -c %s "$work/ours.eif") >> 20 ))
echo "image: ${mib} MiB in ${files} files; EIF ${eif_mib} MiB"
echo "nitro-eif build:  ${ours_s} s wall, ${ours_cpu} s CPU, peak RSS $((ours_kb / 1024)) MiB"
echo "sha384sum of EIF: ${hash_s} s wall, ${hash_cpu} s CPU"
echo "ratio build/sha384sum: wall $(echo "scale=2; $ours_s / $hash_s" | bc), CPU $(echo "scale=2; $ours_cpu / $hash_cpu" | bc)"
echo "baseline tar+cpio+eif_build: ${base_s} s wall, ${base_cpu} s CPU, peak RSS $((base_kb / 1024)) MiB"
echo "ratio ours/baseline: wall $(echo "scale=2; $ours_s / $base_s" | bc)"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores; other processes skew wall times)"
