#!/usr/bin/env bash
# Builds the release binary and the bench_* examples, runs every benchmark against
# the real binary on 127.0.0.1 only (the LAN one in network namespaces it makes), and
# prints a summary. Figures go in BENCHMARKS.md by hand; nothing here asserts a speed,
# but a benchmark that fails (exits non-zero, times out) makes this script exit
# non-zero after the summary, which names it.
#
#   scripts/bench.sh            # full run (about 15 minutes after the build)
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
    probe=(--secs 3 --counts 0,1,10)
    rec1=(--poll 1 --trials 2 --hold-max 2)
    rec10=(--poll 10 --trials 2 --hold-max 2)
    detection_trials=2
else
    lat=(--runs 5 --requests 2000 --warmup 200 --fresh-requests 200)
    sale=(--runs 3 --sales 100 --warmup 10)
    jour=(--runs 5 --txns 300)
    start=(--starts 10 --idle-ms 1000)
    probe=(--secs 20 --counts 0,1,100)
    rec1=(--poll 1 --trials 10 --hold-max 10)
    rec10=(--poll 10 --trials 10 --hold-max 10)
    detection_trials=10
fi

echo "== build (cargo build --release --bin ecrlink --examples)"
cargo build --release --bin ecrlink --examples 2>&1 | tail -n 2
export BENCH_ECRLINK_BIN="$target/release/ecrlink"
failures="$log.failed"
: >"$failures"

is_root() { [[ "$(id -u)" == 0 ]]; }

# Runs one benchmark; a failure is recorded (the block below runs in a pipeline's
# subshell, hence the file) and the next benchmark still runs.
bench() {
    local name=$1
    shift
    local rc=0
    "$@" || rc=$?
    if [[ $rc != 0 ]]; then
        echo "FAILED $name (exit $rc)"
        echo "$name (exit $rc)" >>"$failures"
    fi
}

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
        bench "$b" timeout 600 "$target/release/examples/$b" "${args[@]}"
        load_note "after $b"
    done
    # Issue 4: probe overhead, in a network namespace of its own (unshare --net).
    echo "== bench_probe"
    if is_root; then
        bench bench_probe timeout 600 "$target/release/examples/bench_probe" "${probe[@]}"
    else
        echo "SKIPPED bench_probe: needs root for its own network namespace"
    fi
    load_note "after bench_probe"
    # Issue 4: detection time on a namespace LAN (veth, nftables faults).
    echo "== bench_detection"
    if is_root; then
        BENCH_DETECTION_TRIALS=$detection_trials \
            bench bench_detection timeout 900 "$target/release/examples/bench_detection"
    else
        echo "SKIPPED bench_detection: needs root to create network namespaces"
    fi
    load_note "after bench_detection"
    # Issue 3: reconcile time after a hanging terminal thaws, pollSeconds 1 and 10.
    for r in rec1 rec10; do
        echo "== bench_reconcile ($r)"
        declare -n rargs=$r
        bench "bench_reconcile ($r)" timeout 900 "$target/release/examples/bench_reconcile" "${rargs[@]}"
        load_note "after bench_reconcile ($r)"
    done
    # Issue 5: MQTT fallback switch and status round trip (needs mosquitto).
    echo "== bench_fallback --probe fast"
    bench "bench_fallback --probe fast" timeout 900 "$target/release/examples/bench_fallback" --probe fast
    load_note "after bench_fallback --probe fast"
    # Issue 5 at the defaults (pollSeconds 10, probe 1000 ms / 3 / 2; needs mosquitto).
    echo "== bench_fallback --probe default"
    BENCH_SWITCH_TRIALS=$detection_trials \
        bench "bench_fallback --probe default" timeout 900 "$target/release/examples/bench_fallback" --probe default
    load_note "after bench_fallback --probe default"
} 2>&1 | tee "$log"

echo
echo "== summary (full log: $log)"
grep -E '^(date|commit|cpus|memory|disk|load)' "$log"
grep '^SUMMARY' "$log" | sed 's/^SUMMARY //'
grep '^BENCH .*median' "$log" | sed 's/^BENCH /mqtt /' || true
if [[ -s "$failures" ]]; then
    echo "FAILED benchmarks:"
    sed 's/^/  /' "$failures"
    exit 1
fi
