#!/usr/bin/env bash
# CI (issue 15): the status page in a real browser. Debian's headless Chromium, driven by
# playwright-core (npm, installed into target/browser; the system Chromium is its
# executablePath), against the real binaries on loopback: two simulated lanes behind a
# gateway with an API key. The page must show both lanes up, a sale the test starts must
# appear live and end approved, and a lane whose terminal dies must turn down.
# Screenshot: target/browser/status-page.png (the CI artifact). TLS is verified: the
# browser trusts only the gateway's own public key (--ignore-certificate-errors-spki-list
# is a pin, not "ignore all"), the Node client trusts the private CA.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_CORE_VERSION=1.65.1
out=target/browser
mkdir -p "$out"

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "browser test: chromium is missing (apt-get install chromium, as root)" >&2
    exit 1
  fi
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: nodejs npm"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "browser test: node and npm are missing" >&2
    exit 1
  fi
fi
if [ ! -f "$out/node_modules/playwright-core/package.json" ]; then
  npm install --silent --no-audit --no-fund --prefix "$out" "playwright-core@$PLAYWRIGHT_CORE_VERSION" >/dev/null
fi

nice cargo build --quiet
bin=$PWD/target/debug/ecrlink
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" certs init --dir "$work/certs" --terminal-ip 127.0.0.1 >/dev/null

# Starts `ecrlink ARGS` in the background; prints its pid and bound address.
start() {
  local name=$1; shift
  local fifo="$work/$name.out"
  mkfifo "$fifo"
  "$bin" "$@" >"$fifo" 2>"$work/$name.log" &
  local pid=$!
  local line
  read -r line <"$fifo"
  # Keep draining stdout so the child never blocks on a full pipe.
  cat "$fifo" >/dev/null &
  echo "$pid ${line#listening on }"
}

read -r sim1 addr1 < <(start sim1 sim --listen 127.0.0.1:0 --certs "$work/certs" --device-id LANE-1 --card-time 4)
read -r sim2 addr2 < <(start sim2 sim --listen 127.0.0.1:0 --certs "$work/certs" --device-id LANE-2 --card-time 4)
pids+=("$sim1" "$sim2")
addr1=${addr1#https://}; addr2=${addr2#https://}
cat >"$work/gw.json" <<JSON
{ "port": "0", "url": "localhost", "mode": "F", "SSL": "True",
  "terminals": [ {"deviceId": "LANE-1", "terminalIp": "$addr1"},
                 {"deviceId": "LANE-2", "terminalIp": "$addr2"} ],
  "staticIptimeOut": 2, "timeStop": 30, "pollSeconds": 0.3,
  "probeIntervalMs": 300, "apiKey": "browser-test-key",
  "certsDir": "$work/certs", "journal": "$work/journal.db" }
JSON
read -r gw gwaddr < <(start gw serve --config "$work/gw.json")
pids+=("$gw")
port=${gwaddr##*:}
spki=$(openssl x509 -in "$work/certs/gateway.pem" -pubkey -noout \
  | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)

started=$(date +%s)
set +e
URL="https://localhost:$port/" API_KEY=browser-test-key CA="$work/certs/ca.pem" SPKI="$spki" \
  CUT_PID="$sim2" SCREENSHOT="$out/status-page.png" USER_DATA_DIR="$work/chromium" \
  NODE_PATH="$PWD/$out/node_modules" node .ci/browser/status-page.mjs
rc=$?
set -e
echo "browser test: $(( $(date +%s) - started )) s in the browser"
if [ "$rc" != 0 ]; then
  echo "--- gateway log"; tail -n 40 "$work/gw.log"
  echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
  exit 1
fi
echo "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
