#!/usr/bin/env bash
# Builds the release binary and the bench_* examples, runs every benchmark against
# the real binary on 127.0.0.1 only, and prints a summary. Figures go in BENCHMARKS.md
# by hand; nothing here asserts a speed.
#
#   scripts/bench.sh            # full run (about 3-5 minutes after the build)
#   QUICK=1 scripts/bench.sh    # fewer iterations, to check the plumbing
#
# Honours CARGO_TARGET_DIR. Temp folders (PKI, journals) go to $BENCH_DIR or
# <target>/bench-tmp, on the build disk, so journal fsyncs are real.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
log="$(mktemp -t ecrlink-bench.XXXXXX)"

if [[ "${QUICK:-0}" == 1 ]]; then
    lat=(--runs 2 --requests 200 --warmup 20 --fresh-requests 20)
    sale=(--runs 2 --sales 20 --warmup 2)
    jour=(--runs 2 --txns 30)
    start=(--starts 3 --idle-ms 300)
else
    lat=(--runs 5 --requests 2000 --warmup 200 --fresh-requests 200)
    sale=(--runs 3 --sales 100 --warmup 10)
    jour=(--runs 5 --txns 300)
    start=(--starts 10 --idle-ms 1000)
fi

echo "== build (cargo build --release --bin ecrlink --examples)"
cargo build --release --bin ecrlink --examples 2>&1 | tail -n 2

machine() {
    echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "cpus:    $(nproc) x $(lscpu | grep 'Model name' | sed 's/.*: *//')"
    echo "memory:  $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
    echo "disk:    $(df -T "$target" | awk 'NR==2 {print $2 " on " $1}')"
    echo "kernel:  $(uname -r)"
}
load_note() {
    # Other builds on the machine skew every figure: say so. The load average and
    # pressure (PSI) are machine-wide; other agents' processes may not be visible to ps.
    local cpu io
    cpu=$(awk '/^some/ {print $2}' /proc/pressure/cpu 2>/dev/null || echo '?')
    io=$(awk '/^some/ {print $2}' /proc/pressure/io 2>/dev/null || echo '?')
    echo "load ($1): loadavg $(cut -d' ' -f1-3 /proc/loadavg); cpu pressure $cpu; io pressure $io"
}

{
    echo "== machine"
    machine
    load_note before
    for b in bench_latency bench_sale bench_journal bench_startup; do
        echo "== $b"
        case $b in
            bench_latency) args=("${lat[@]}") ;;
            bench_sale) args=("${sale[@]}") ;;
            bench_journal) args=("${jour[@]}") ;;
            bench_startup) args=("${start[@]}") ;;
        esac
        BENCH_ECRLINK_BIN="$target/release/ecrlink" timeout 600 "$target/release/examples/$b" "${args[@]}"
        load_note "after $b"
    done
} 2>&1 | tee "$log"

echo
echo "== summary (full log: $log)"
grep -E '^(date|commit|cpus|memory|disk|load)' "$log"
grep '^SUMMARY' "$log" | sed 's/^SUMMARY //'
