# Sourced by the test-tool scripts: installs Debian packages that are missing (and only those).
# shellcheck shell=bash

# apt_ensure PKG... : `apt-get install` of the packages not installed yet; a no-op when all are.
apt_ensure() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "apt: installing ${missing[*]}" >&2
        apt-get update -qq -o DPkg::Lock::Timeout=600
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
    fi
}
