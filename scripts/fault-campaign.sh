#!/bin/sh
# The long randomized fault campaign of issue 8: COUNT sales (default 1000), each with
# random terminal faults (error after the charge, another transaction's record,
# dropped answers, late records, failing lookups, ignored polls, hangs), terminal
# kill -9 and gateway kill -9, every sale checked against the terminal's own record:
# 0 lost, 0 doubled, 0 invented.
#
#   scripts/fault-campaign.sh [COUNT] [SEED]     (SEED decimal or 0x…; default random)
#
# The seed is printed first and in every failure, so a run can be replayed.
set -eu
cd "$(dirname "$0")/.."
ECRLINK_CAMPAIGN_SALES="${1:-1000}"
export ECRLINK_CAMPAIGN_SALES
if [ -n "${2:-}" ]; then
    ECRLINK_CAMPAIGN_SEED="$2"
    export ECRLINK_CAMPAIGN_SEED
fi
exec cargo test --test fault_campaign -- --nocapture
