#!/usr/bin/env bash
# Call setup time from a browser: headless Chromium running the unmodified Flashphoner
# Web SDK calls a local pjsua2 phone (answering at once) through Switchboard; prints the
# page's own call() -> ESTABLISHED times. Needs what scripts/install-test-deps installs.
#   bench/wcs_call_setup.sh [runs]      (default 10; the dev profile, as the tests build it)
set -euo pipefail
cd "$(dirname "$0")/.."
export WCS_SETUP_RUNS=${1:-${WCS_SETUP_RUNS:-10}}
cargo test -p switchboard --test wcs_browser measure_call_setup -- --ignored --nocapture 2>&1 | grep -E "ESTABLISHED over|test result"
