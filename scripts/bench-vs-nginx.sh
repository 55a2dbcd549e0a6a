#!/usr/bin/env bash
# ecrlink against nginx as a TLS re-encrypting proxy, one run on 127.0.0.1 (issue 13):
# sequential sale latency (straight to the simulator / through nginx / through ecrlink,
# interleaved rounds, medians) and throughput at 32 lanes, plus journal commits and
# fsyncs per sale. nginx is Debian's, started by the benchmark with its own config in a
# temporary folder, verifying the simulator's certificate and name like ecrlink does.
#
#   scripts/bench-vs-nginx.sh [extra args for examples/bench_vs_nginx.rs]
#   e.g. scripts/bench-vs-nginx.sh --rounds 5 --sales 200 --lanes 32 --secs 5
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v strace >/dev/null 2>&1 || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian starts the packaged nginx on port 80; the benchmark runs its own.
    systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
  else
    echo "needs: ${need[*]} (apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
strace_flag=(--strace 0)
if command -v strace >/dev/null 2>&1 && strace -f -e trace=none true >/dev/null 2>&1; then
  strace_flag=(--strace 1)
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --bin ecrlink --example bench_vs_nginx
./target/release/examples/bench_vs_nginx "${strace_flag[@]}" "$@"
