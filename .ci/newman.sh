#!/usr/bin/env bash
# CI: the Postman collection (postman/) through newman against `ecrlink demo` (two
# simulated lanes + gateway on loopback, throwaway PKI), over verified TLS: the demo's CA
# is given with --ssl-extra-ca-certs and nothing turns verification off. newman is
# installed with npm into .ci/node (or $NEWMAN_PREFIX) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
ECRLINK_BIN=${ECRLINK_BIN:-target/debug/ecrlink}
prefix=${NEWMAN_PREFIX:-.ci/node}
newman="$prefix/node_modules/.bin/newman"
if [ ! -x "$newman" ]; then
  npm install --silent --no-audit --no-fund --prefix "$prefix" newman >/dev/null
fi
out=$(mktemp)
"$ECRLINK_BIN" demo >"$out" 2>/dev/null &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -f "$out"' EXIT
# The demo prints its gateway URL, its sales, then "Try it" and curl lines naming the CA.
for _ in $(seq 300); do
  grep -q '^Try it' "$out" && break
  kill -0 $demo 2>/dev/null || { echo "demo exited:"; cat "$out"; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^gateway API at \(https:[^ ]*\).*/\1/p' "$out" | head -n1)
ca=$(grep -o -- '--cacert [^ ]*' "$out" | head -n1 | cut -d' ' -f2)
[ -n "$url" ] && [ -f "$ca" ] || { echo "no gateway URL or CA in the demo's output:"; cat "$out"; exit 1; }
echo "newman against $url (CA $ca)"
"$newman" run postman/ecrlink.postman_collection.json \
  -e postman/ecrlink.postman_environment.json \
  --env-var "baseUrl=$url" --ssl-extra-ca-certs "$ca" --color off
