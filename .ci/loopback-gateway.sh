# Sourced by .ci/schemathesis.sh and .ci/newman.sh: a throwaway PKI, `ecrlink sim
# --card-time 0` and `ecrlink serve` on free loopback ports (port 0, the bound address
# read from each one's first stdout line), an API key, and a cleanup on exit.
#
#   start_loopback_gateway   sets GW_URL (https://localhost:PORT), GW_CA (ca.pem),
#                            GW_CAROOT (caroot.cer), GW_KEY (the API key), GW_DIR
# Needs ECRLINK_BIN (default target/debug/ecrlink, built by cargo test).

ECRLINK_BIN=${ECRLINK_BIN:-target/debug/ecrlink}
GW_PIDS=()

stop_loopback_gateway() {
  local pid
  for pid in "${GW_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${GW_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${GW_DIR:-}" ] && rm -rf "$GW_DIR"
}

# The address a child printed as `listening on ADDR` on its first line (10 s at most).
listening_address() {
  local log=$1 pid=$2 i line
  for i in $(seq 100); do
    line=$(head -n1 "$log" 2>/dev/null || true)
    case "$line" in "listening on "*) echo "${line#listening on }"; return 0 ;; esac
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "no 'listening on' line from pid $pid; its output:" >&2
  cat "$log" >&2
  return 1
}

start_loopback_gateway() {
  GW_DIR=$(mktemp -d)
  trap stop_loopback_gateway EXIT
  "$ECRLINK_BIN" certs init --dir "$GW_DIR/certs" --terminal-ip 127.0.0.1 >/dev/null
  "$ECRLINK_BIN" sim --listen 127.0.0.1:0 --certs "$GW_DIR/certs" --card-time 0 \
    >"$GW_DIR/sim.out" 2>"$GW_DIR/sim.log" &
  GW_PIDS+=($!)
  local sim
  sim=$(listening_address "$GW_DIR/sim.out" $!)
  GW_KEY=ci-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
  cat >"$GW_DIR/config.json" <<JSON
{"port": "0", "url": "localhost", "mode": "F", "SSL": "True", "terminalIp": "$sim",
 "deviceId": "ECRLINK-SIM-0001", "timeStop": 20, "pollSeconds": 0.2,
 "certsDir": "$GW_DIR/certs", "journal": "$GW_DIR/journal.db", "apiKey": "$GW_KEY"}
JSON
  "$ECRLINK_BIN" serve --config "$GW_DIR/config.json" >"$GW_DIR/gateway.out" 2>"$GW_DIR/gateway.log" &
  GW_PIDS+=($!)
  local gw
  gw=$(listening_address "$GW_DIR/gateway.out" $!)
  GW_URL="https://localhost:${gw##*:}"
  GW_CA="$GW_DIR/certs/ca.pem"
  GW_CAROOT="$GW_DIR/certs/caroot.cer"
  export GW_URL GW_CA GW_CAROOT GW_KEY GW_DIR
}
