#!/usr/bin/env bash
# Soak test of `plumewatch run` against broker faults (issue 10); not part of `cargo test`.
#
#   scripts/soak.sh [MINUTES]        # default 30
#
# Starts its own tansu broker (memory storage) on SOAK_PORT (default 19192), produces plate
# reads at SOAK_RATE records/s (default 200) to a 2-partition topic, restarts the broker every
# SOAK_BROKER_EVERY_S (default 300 s; the memory broker comes back empty, i.e. the topic is
# re-created) and kills `run` with SIGKILL every SOAK_KILL_EVERY_S (default 180 s). At the end
# a last `run` reads what is left and the tables are checked: no duplicate row, no row that was
# never produced, every record of the last broker life present; records of earlier lives that
# the broker lost in a restart before `run` read them are counted per life, and the
# `source_reset` rows are counted. Needs tansu (`cargo install tansu --locked --features
# dynostore`, or SOAK_TANSU=/path/to/tansu). Uses the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_MINUTES="${1:-${SOAK_MINUTES:-30}}"
cargo test --test field_kafka soak_broker_restarts_and_kills -- --ignored --nocapture
