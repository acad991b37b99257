#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 180) each, one after the other, each as a
# single libFuzzer process (no -jobs/-workers: one core).
# Usage: fuzz/run-all.sh [seconds]   (from the repository root or from fuzz/)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-180}"
for t in layer_request verify_jwt remember_me_cookie refresh_params; do
    mkdir -p "fuzz/corpus/$t" fuzz/artifacts
    RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=1 cargo fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 \
        2>&1 | tee "fuzz/artifacts/$t.log" || { echo "$t: FAILED (see fuzz/artifacts/$t.log)"; exit 1; }
done
