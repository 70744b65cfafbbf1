#!/usr/bin/env bash
# Benchmark of the supervisor's link services (numbers, never a pass/fail test):
# ingress throughput over the unix transport vs a direct loopback TCP copy of 1 GiB, added
# latency p50/p99 at 1,000 req/s, log records/s before drops start, the services' RSS.
# `--quick` uses 256 MiB and fewer requests; `--buffered` proxies with link.proxy_copy "buffered"
# (default: splice). Prints the machine load first: other builds on a shared machine skew every
# number.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
echo "load: $(uptime)"
cargo bench --locked -p enclave-supervisor --bench proxy -- "$@"
echo "load: $(uptime)"
