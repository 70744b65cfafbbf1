# Sourced by the project's scripts. One persistent cache outside the clone, so CI and developers
# reuse the Python venv (cfn-lint, moto), cargo-installed tools (eif_build) and the cargo target dir.
NP_CACHE="${NITRO_PROVISION_CACHE:-$HOME/.cache/nitro-provision}"
export NP_CACHE
export PATH="$NP_CACHE/bin:$NP_CACHE/venv/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$NP_CACHE/target}"
