#!/bin/sh
# The long kill -9 campaign of issue 3: SIGKILL the gateway at random moments of
# sales, restart it on the same journal, and check every sale against the
# simulated terminal's own record (one start per transactionId).
#
#   scripts/kill9-campaign.sh [ITERATIONS] [SEED]     (defaults: 200, fixed seed)
#
# A failure names the iteration, seed and delay, so it can be replayed.
set -eu
cd "$(dirname "$0")/.."
CAMPAIGN_ITERATIONS="${1:-200}"
export CAMPAIGN_ITERATIONS
if [ -n "${2:-}" ]; then
    CAMPAIGN_SEED="$2"
    export CAMPAIGN_SEED
fi
exec cargo test --test exactly_once kill9_campaign -- --exact --nocapture
