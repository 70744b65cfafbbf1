#!/usr/bin/env bash
# A real x86_64 kernel blobs directory for the local VM stack, as nitro-cli installs one:
#   bzImage, bzImage.config, nsm.ko  the enclave kernel and its NSM module (vm-kernel.sh)
#   init                             AWS's init (tests/fixtures/aws-bootstrap/init/init.c) built
#                                    as sdk-bootstrap builds it: musl, static, -O2 -flto, stripped
#   cmdline                          AWS's enclave cmdline, byte for byte
#   sha384                           `sha384sum` of the four blobs; blobs.yaml: the same as an
#                                    enclave.yaml `image.blobs` block
# Output: $NP_CACHE/vm/blobs/x86_64/. Idempotent and keyed on its inputs (including the kernel
# build's key); cold: the kernel's cost plus about a second, warm: well under a second.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=vm/lib.sh
source "$here/vm/lib.sh"

bash "$here/vm-kernel.sh"

part=blobs
bootstrap="$REPO_ROOT/tests/fixtures/aws-bootstrap"
kernel_dir="$(readlink "$VM_CACHE/kernel")"
apt_ensure musl-tools
key="$(vm_key "$part" "$0" "$bootstrap/init/init.c" "$bootstrap/kernel/cmdline/x86_64.cmdline" \
    "str:kernel=$kernel_dir" "str:$(dpkg-query -W -f='${Version}' musl-tools)" \
    "str:$(gcc --version | head -1)")"
vm_ready "$part" "$key" && exit 0
vm_lock "$part"
vm_ready "$part" "$key" && exit 0
start=$(date +%s)

dir="$(vm_part_dir "$part" "$key")"
rm -rf "$dir"
mkdir -p "$dir/x86_64" "$dir/include"
out="$dir/x86_64"

# musl-gcc searches only musl's headers; init.c needs the kernel's <linux/vm_sockets.h>.
for h in linux asm-generic; do ln -s "/usr/include/$h" "$dir/include/$h"; done
ln -s /usr/include/x86_64-linux-gnu/asm "$dir/include/asm"
build_init() {
    musl-gcc -Wall -Wextra -Werror -O2 -flto -static -isystem "$dir/include" \
        -o "$out/init" "$bootstrap/init/init.c"
    strip --strip-all "$out/init"
}
vm_timed "AWS init (musl-gcc -static)" build_init
rm -rf "$dir/include"

cp "$kernel_dir/bzImage" "$kernel_dir/bzImage.config" "$kernel_dir/nsm.ko" "$out/"
cp "$bootstrap/kernel/cmdline/x86_64.cmdline" "$out/cmdline"
(cd "$out" && sha384sum bzImage cmdline init nsm.ko >sha384)
{
    echo "blobs:"
    echo "  dir: $VM_CACHE/blobs/x86_64"
    echo "  sha384:"
    awk '{ print "    " $2 ": " $1 }' "$out/sha384"
} >"$out/blobs.yaml"
vm_finish "$part" "$dir" "$start"
sed 's/^/vm-stack:   /' "$out/sha384" >&2
