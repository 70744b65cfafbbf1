# Shared by the VM-stack scripts (vm-*.sh): cache keys, locking, timing, apt and pins.
# Sourced, never run: test.sh runs only scripts/test-tools/*.sh.
# shellcheck shell=bash

VM_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$VM_LIB_DIR/../../.." && pwd)"
# shellcheck source=../../env.sh
source "$REPO_ROOT/scripts/env.sh"
# shellcheck source=pins.sh
source "$VM_LIB_DIR/pins.sh"
# shellcheck source=../lib/apt.sh
source "$VM_LIB_DIR/../lib/apt.sh"

VM_CACHE="$NP_CACHE/vm"
VM_DOWNLOADS="$VM_CACHE/downloads"
mkdir -p "$VM_CACHE/parts" "$VM_DOWNLOADS"

vm_log() { echo "vm-stack: $*" >&2; }
vm_die() {
    echo "vm-stack: ERROR: $*" >&2
    exit 1
}

# vm_key PART INPUT... : a short hash over the named files' contents and the literal strings
# given as `str:VALUE`, so any changed input (the part's script, pin, fixture, toolchain) gives a
# new key. The shared helpers here are not keyed: they decide where and how, not what is built.
vm_key() {
    local part="$1"
    shift
    {
        echo "part=$part"
        local input
        for input in "$@"; do
            case "$input" in
                str:*) echo "${input#str:}" ;;
                *) sha256sum <"$input" | cut -d' ' -f1 ;;
            esac
        done
    } | sha256sum | cut -c1-16
}

# vm_part_dir PART KEY : where a part built with KEY lives (complete iff it holds `.done`).
vm_part_dir() { echo "$VM_CACHE/parts/$1-$2"; }

# vm_ready PART KEY : true (and prints) when that build is cached; the warm path ends here.
vm_ready() {
    local dir
    dir="$(vm_part_dir "$1" "$2")"
    if [ -f "$dir/.done" ]; then
        vm_publish "$1" "$dir"
        vm_log "$1 ready (cached, key $2): $VM_CACHE/$1"
        return 0
    fi
    return 1
}

# vm_publish PART DIR : points the stable name $VM_CACHE/PART at DIR (atomic rename of a symlink)
# and removes older builds of PART.
vm_publish() {
    local part="$1" dir="$2" old
    [ "$(readlink "$VM_CACHE/$part" 2>/dev/null)" = "$dir" ] && return 0
    ln -sfn "$dir" "$VM_CACHE/.$part.new"
    mv -Tf "$VM_CACHE/.$part.new" "$VM_CACHE/$part"
    for old in "$VM_CACHE/parts/$part"-*; do
        [ "$old" = "$dir" ] || rm -rf "$old"
    done
}

# vm_lock PART : one builder per part at a time (parallel test.sh runs share the cache).
vm_lock() {
    exec {VM_LOCK_FD}>"$VM_CACHE/.lock-$1"
    flock "$VM_LOCK_FD"
}

# vm_timed LABEL CMD... : runs CMD, printing what it builds and how long it took. A failing
# command ends the script (errexit); the EXIT trap then names the step that failed.
VM_STEP=""
vm_timed() {
    local label="$1" start
    shift
    start=$(date +%s)
    VM_STEP="$label"
    vm_log "$label ..."
    "$@"
    VM_STEP=""
    vm_log "$label: done in $(($(date +%s) - start)) s"
}
vm_on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -n "$VM_STEP" ]; then
        echo "vm-stack: ERROR: $VM_STEP failed (exit $rc)" >&2
    fi
}
trap vm_on_exit EXIT

# vm_finish PART DIR START : marks DIR complete, publishes it and prints the part's cold cost.
vm_finish() {
    local part="$1" dir="$2" start="$3"
    echo "$(($(date +%s) - start))" >"$dir/.build-seconds"
    touch "$dir/.done"
    vm_publish "$part" "$dir"
    vm_log "$part built in $(($(date +%s) - start)) s: $VM_CACHE/$part"
}

# A private apt configuration with deb-src entries for the suites the pins name, on the same
# mirror as the system's Debian sources. The system's own apt configuration is not touched.
VM_APT_DIR="$VM_CACHE/apt"
vm_apt_src() {
    local mirror
    mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $2 !~ /^\[/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
    [ -n "$mirror" ] || vm_die "no Debian mirror found in /etc/apt/sources.list(.d)"
    mkdir -p "$VM_APT_DIR/lists/partial" "$VM_APT_DIR/cache/archives/partial"
    local suite
    for suite in $VM_SOURCE_SUITES; do
        echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main"
    done >"$VM_APT_DIR/sources.list"
    VM_APT_OPTS=(
        -o "Dir::Etc::SourceList=$VM_APT_DIR/sources.list"
        -o "Dir::Etc::SourceParts=$VM_APT_DIR/none"
        -o "Dir::State::Lists=$VM_APT_DIR/lists"
        -o "Dir::Cache=$VM_APT_DIR/cache"
        -o "APT::Sandbox::User=root"
    )
    apt-get "${VM_APT_OPTS[@]}" update -qq
}

# vm_require_version KIND NAME VERSION VARIABLE OFFERED... : fails with what to update when
# Debian no longer offers a pinned version (the archive drops superseded ones).
vm_require_version() {
    local kind="$1" name="$2" version="$3" variable="$4"
    shift 4
    local v
    for v in "$@"; do
        [ "$v" = "$version" ] && return 0
    done
    vm_die "Debian no longer offers $kind $name=$version (offered now: ${*:-none}).
  Update $variable in scripts/test-tools/vm/pins.sh to one of the offered versions
  (or export NP_$variable=<version> for one run). Nothing else depends on the exact version:
  the tests compare PCRs with measurements computed from the same build."
}
