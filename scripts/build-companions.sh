#!/usr/bin/env bash
# Builds the companion binaries — enclave-supervisor (on the EC2 host) and enclave-runtime
# (inside the EIF, measured in PCR2) — as static musl executables for x86_64 and aarch64 from
# the same sources: no ELF interpreter, no libc dependency, so they run on any glibc (AL2023
# ships 2.34) or none. Linked with rust-lld (shipped with the toolchain): no cross C toolchain.
#
# Reproducible: a pinned toolchain, --locked, every build path remapped (workspace, CARGO_HOME,
# target dir), no timestamps. --verify-reproducible builds again from a copy of the workspace at
# another path with another target dir and CARGO_HOME path, and fails unless the bytes match.
#
# Usage: scripts/build-companions.sh [--out DIR] [--target TRIPLE]... [--bin NAME]...
#                                    [--verify-reproducible]
# Defaults: --out $NP_CACHE/companions, both targets, both binaries. Output:
# DIR/<triple>/<binary>, and DIR/SHA256SUMS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=env.sh
source "$root/scripts/env.sh"

RUST_TOOLCHAIN="1.95.0"
out="$NP_CACHE/companions"
targets=()
bins=()
verify=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --bin) bins+=("$2"); shift 2 ;;
    --verify-reproducible) verify=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "build-companions: unknown argument $1" >&2; exit 1 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
[ ${#bins[@]} -gt 0 ] || bins=(enclave-supervisor enclave-runtime)
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# The pinned toolchain: installed if rustup can, or the default one when it is that version.
if rustup run "$RUST_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  run=(rustup run "$RUST_TOOLCHAIN")
  tc_flag=(--toolchain "$RUST_TOOLCHAIN")
elif rustc --version | grep -q "^rustc $RUST_TOOLCHAIN "; then
  run=()
  tc_flag=()
elif rustup toolchain install "$RUST_TOOLCHAIN" --profile minimal >&2; then
  run=(rustup run "$RUST_TOOLCHAIN")
  tc_flag=(--toolchain "$RUST_TOOLCHAIN")
else
  echo "build-companions: Rust $RUST_TOOLCHAIN is needed for reproducible builds and cannot be installed" >&2
  exit 1
fi
installed="$(rustup target list --installed "${tc_flag[@]}")"
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$installed" || rustup target add "${tc_flag[@]}" "$t" >&2
done
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

# build WORKSPACE TARGET_DIR CARGO_HOME DEST: every target and binary of this run into DEST.
build() {
  local ws="$1" target_dir="$2" home="$3" dest="$4" t b flags
  for t in "${targets[@]}"; do
    mkdir -p "$dest/$t"
    for b in "${bins[@]}"; do
      # One binary per cargo call: features are not unified across the two packages, so each
      # binary's bytes depend only on its own dependency graph.
      flags="-C linker=rust-lld -C linker-flavor=ld.lld -C target-feature=+crt-static"
      flags+=" --remap-path-prefix=$ws=/nitro-provision"
      flags+=" --remap-path-prefix=$home=/cargo-home"
      flags+=" --remap-path-prefix=$target_dir=/target"
      (cd "$ws" && env CARGO_HOME="$home" CARGO_TARGET_DIR="$target_dir" \
        SOURCE_DATE_EPOCH=0 TZ=UTC LC_ALL=C \
        CARGO_ENCODED_RUSTFLAGS="$(tr ' ' '\037' <<<"$flags")" \
        "${run[@]}" cargo build --release --locked --quiet --target "$t" -p "$b" --bin "$b")
      cp "$target_dir/$t/release/$b" "$dest/$t/$b"
    done
  done
}

started=$(date +%s)
build "$root" "$NP_CACHE/target-companions" "$cargo_home" "$out"
took=$(( $(date +%s) - started ))
(cd "$out" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
echo "build-companions: built in ${took} s (incremental when warm) into $out:"
(cd "$out" && while read -r sum path; do
  printf '  %-48s %9d bytes  sha256 %s\n' "${path#./}" "$(stat -c %s "$path")" "$sum"
done < SHA256SUMS)

if [ "$verify" = 1 ]; then
  # A second workspace path, target dir and CARGO_HOME path (the registry is shared through a
  # symlink: same crates, different path).
  other="$NP_CACHE/companions-verify"
  rm -rf "$other/ws" "$other/out" "$other/cargo-home"
  mkdir -p "$other/ws" "$other/cargo-home"
  (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) \
    | tar -xf - -C "$other/ws"
  ln -s "$cargo_home/registry" "$other/cargo-home/registry"
  for shared in git config.toml config; do
    if [ -e "$cargo_home/$shared" ]; then ln -s "$cargo_home/$shared" "$other/cargo-home/$shared"; fi
  done
  started=$(date +%s)
  build "$other/ws" "$other/target" "$other/cargo-home" "$other/out"
  echo "build-companions: second build (other paths) in $(( $(date +%s) - started )) s"
  (cd "$other/out" && find . -type f | sort | xargs sha256sum) > "$other/SHA256SUMS"
  if ! diff <(grep -v SHA256SUMS "$out/SHA256SUMS") "$other/SHA256SUMS" >&2; then
    echo "build-companions: NOT reproducible: the builds above differ" >&2
    exit 1
  fi
  echo "build-companions: reproducible: both builds are byte-identical"
fi
