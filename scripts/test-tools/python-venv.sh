#!/usr/bin/env bash
# cfn-lint (template validation), moto (local AWS endpoint) and the attested-KMS front's
# dependencies (cbor2, cryptography: tests/harness/awsim) in a venv under $NP_CACHE.
# Idempotent: returns at once when the pinned versions are installed.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
CFN_LINT_VERSION=1.58.0
MOTO_VERSION=5.2.5
CBOR2_VERSION=6.2.1
CRYPTOGRAPHY_VERSION=50.0.2
venv="$NP_CACHE/venv"
stamp="$venv/.nitro-provision-$CFN_LINT_VERSION-$MOTO_VERSION-$CBOR2_VERSION-$CRYPTOGRAPHY_VERSION"
[ -f "$stamp" ] && exit 0
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "cfn-lint==$CFN_LINT_VERSION" "moto[server]==$MOTO_VERSION" \
  "cbor2==$CBOR2_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION"
touch "$stamp"
