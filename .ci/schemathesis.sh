#!/usr/bin/env bash
# CI: schemathesis (4.x, every check) against `serve` + `sim --card-time 0` on loopback,
# over verified TLS with the throwaway CA, from the repository root so schemathesis.toml
# applies. Passes when it generated at least MIN_CASES cases and found no failure.
# Installs schemathesis into a venv (.ci/.venv, or $SCHEMATHESIS_VENV) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
MIN_CASES=${MIN_CASES:-1000}
venv=${SCHEMATHESIS_VENV:-.ci/.venv}
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q schemathesis
fi
# shellcheck source=.ci/loopback-gateway.sh
. .ci/loopback-gateway.sh
start_loopback_gateway
out=$(mktemp)
set +e
NO_COLOR=1 "$venv/bin/schemathesis" run "$GW_URL/openapi.json" --url "$GW_URL" --tls-verify "$GW_CA" \
  --header "Authorization: Bearer $GW_KEY" \
  --checks all --max-examples 100 -w 1 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
# The summary says e.g. "Test cases:\n  2477 generated, 2477 passed".
generated=$(grep -oE '[0-9]+ generated' "$out" | tail -n1 | grep -oE '^[0-9]+' || echo 0)
rm -f "$out"
echo "schemathesis: $generated cases generated, exit code $rc"
if [ "$rc" != 0 ]; then
  echo "FAILED: schemathesis found failures (see above)"
  exit 1
fi
if [ "$generated" -lt "$MIN_CASES" ]; then
  echo "FAILED: only $generated cases generated, at least $MIN_CASES expected"
  exit 1
fi
