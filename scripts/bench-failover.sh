#!/bin/sh
# Issue 11 figures for BENCHMARKS.md: fault -> down and restore -> up (bench_detection),
# idle cut -> mqtt active and stale terminalIp -> first sale approved (bench_failover).
# Needs root, iproute2, nftables and mosquitto. TRIALS (default 10) trials each.
set -eu
cd "$(dirname "$0")/.."
TRIALS="${TRIALS:-10}"
PROFILE="${PROFILE:-release}"
flag=""
[ "$PROFILE" = release ] && flag="--release"
nice cargo build $flag --bin ecrlink --example bench_detection --example bench_failover
export BENCH_ECRLINK_BIN="$PWD/target/$PROFILE/ecrlink"
BENCH_DETECTION_TRIALS="$TRIALS" "target/$PROFILE/examples/bench_detection" | grep -E '^(BENCH|SUMMARY)'
BENCH_FAILOVER_TRIALS="$TRIALS" "target/$PROFILE/examples/bench_failover" | grep -E '^(BENCH|SUMMARY)'
