#!/usr/bin/env bash
# Issue 16: sslyze's Mozilla "intermediate" profile against the API port of a real
# gateway, with the private CA as the trust store. Passes only on "OK - Compliant."
# (sslyze exits 0 even when it cannot connect, so the text decides). sslyze comes from
# PyPI into a venv under target/ (SSLYZE_VENV to reuse another one).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${SSLYZE_VENV:-target/sslyze-venv}
if [ ! -x "$venv/bin/sslyze" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q sslyze
fi
cargo build -q
bin=target/debug/ecrlink

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# The first stdout line of a server is `listening on [SCHEME://]ADDR`; wait for it.
listening() {
  local out=$1 line=""
  for _ in $(seq 100); do
    line=$(head -n1 "$out" 2>/dev/null || true)
    [ -n "$line" ] && break
    sleep 0.1
  done
  line=${line#listening on }
  echo "${line#https://}"
}

"$bin" certs init --dir "$tmp/certs" --terminal-ip 127.0.0.1 >/dev/null
"$bin" sim --listen 127.0.0.1:0 --certs "$tmp/certs" --card-time 0 >"$tmp/sim.out" 2>"$tmp/sim.log" &
pids+=($!)
sim=$(listening "$tmp/sim.out")
cat >"$tmp/config.json" <<JSON
{ "port": "0", "url": "localhost", "mode": "F", "terminalIp": "$sim",
  "certsDir": "$tmp/certs", "journal": "$tmp/journal.db" }
JSON
"$bin" serve --config "$tmp/config.json" >"$tmp/gw.out" 2>"$tmp/gw.log" &
pids+=($!)
gw=$(listening "$tmp/gw.out")
port=${gw##*:}
[ -n "$port" ] || { echo "the gateway did not start:"; cat "$tmp/gw.log"; exit 1; }

echo "+ sslyze --mozilla_config=intermediate --certinfo_ca_file ca.pem localhost:$port{127.0.0.1}"
out=$("$venv/bin/sslyze" --mozilla_config=intermediate --certinfo_ca_file "$tmp/certs/ca.pem" \
  "localhost:$port{127.0.0.1}" 2>&1 || true)
echo "$out" | grep -iE "compliant|mozilla|scan" || true
if echo "$out" | grep -q "OK - Compliant"; then
  echo "sslyze: Mozilla intermediate: compliant"
else
  echo "sslyze: Mozilla intermediate: NOT compliant"
  echo "$out" | tail -40
  exit 1
fi
