#!/usr/bin/env bash
# `ecrlink service install|start|status|stop|uninstall` under wine, with a gateway that
# serves on a free loopback port and watches a terminal at 127.0.0.1:9 (nothing there:
# the probes stay on loopback). wine's service manager stands in for Windows' own; the
# restart-on-error-exit flag is not implemented in wine 8, so install warns about it.
#   .ci/wine/service-lifecycle.sh path/to/ecrlink.exe   (WINEPREFIX etc. set by the caller)
set -euo pipefail
exe=$1
home_win='C:\ecrlink-ci'
home="$WINEPREFIX/drive_c/ecrlink-ci"
# One wineserver for the whole run, so the service manager does not restart between
# commands (it would auto-start the freshly installed service by itself).
# (A server left from the previous wine command would refuse -p: end it first.)
wineserver -k 2>/dev/null || true
wineserver -w
wineserver -p 60
cleanup() {
  wine "$exe" service uninstall >/dev/null 2>&1 || true
  wineserver -k || true
}
trap cleanup EXIT
rm -rf "$home"
wine "$exe" certs init --dir "$home_win\\certs" --terminal-ip 127.0.0.1 >/dev/null
mkdir -p "$home/config"
cat >"$home/config/config.json" <<'JSON'
{ "port": "0", "url": "localhost", "terminalIp": "127.0.0.1:9", "mode": "F", "SSL": "True" }
JSON

expect_rc() { # expect_rc CODE command...
  local want=$1 rc=0
  shift
  "$@" || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "service lifecycle: \`${*:2}\` exited $rc, expected $want" >&2
    exit 1
  fi
}
expect_rc 4 wine "$exe" service status
expect_rc 0 wine "$exe" service install --dir "$home_win"
expect_rc 0 wine "$exe" service start
expect_rc 0 wine "$exe" service status
# The service logs to files in its home: the gateway came up there.
for _ in $(seq 50); do
  grep -qs "gateway ready" "$home"/logs/ecrlink.*.log && break
  sleep 0.2
done
grep -s "gateway ready" "$home"/logs/ecrlink.*.log || {
  echo "service lifecycle: no 'gateway ready' in $home/logs" >&2
  cat "$home"/logs/* >&2 || true
  exit 1
}
expect_rc 0 wine "$exe" service stop
expect_rc 3 wine "$exe" service status
grep -q "service stopped exit_code=Win32(0)" "$home"/logs/ecrlink.*.log
expect_rc 0 wine "$exe" service uninstall
expect_rc 4 wine "$exe" service status
echo "service lifecycle under wine: install, start, running, logs, stop, uninstall all as expected"
