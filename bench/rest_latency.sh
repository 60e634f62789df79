#!/usr/bin/env bash
# REST latency under load: a release server with 100 live rooms (one SIPp caller each,
# holding), then the open-loop client crates/api/examples/rest_load.rs at a fixed rate
# against the conference list and against GET of single conferences.
#
# Usage: bench/rest_latency.sh            (env: RATE=10000 DURATION=10 ROOMS=100 CONNS=32)
# Env: SIP_PORT (default 7260), HTTP_PORT (7280), RTP_PORTS (46000-46999), KEEP=1 keeps
#      the work dir. Needs sipp and curl. Builds with cargo (CARGO_TARGET_DIR honoured).
# Output: one report + RESULT line per measured endpoint.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
RATE=${RATE:-10000}; DURATION=${DURATION:-10}; ROOMS=${ROOMS:-100}; CONNS=${CONNS:-32}
SIP_PORT=${SIP_PORT:-7260}; HTTP_PORT=${HTTP_PORT:-7280}; SIPP_PORT=$((SIP_PORT + 1))
TOKEN=bench-token
T=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p switchboard
cargo build --release -q -p api --example rest_load
WORK=$(mktemp -d /tmp/sb-rest.XXXXXX)
SRV=; SIPP=
trap bench_rest_cleanup EXIT

"$T/release/switchboard" serve --sip-listen 127.0.0.1:$SIP_PORT --http-listen 127.0.0.1:$HTTP_PORT \
  --rtp-ports "${RTP_PORTS:-46000-46999}" --data-dir "$WORK/data" --api-token $TOKEN 2>"$WORK/server.log" &
SRV=$!
bench_wait_for_server "$WORK/server.log"

bench_start_room_callers
count() { curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP_PORT/rest/v1/uc/conferences?countonly=true" | tr -dc 0-9; }
for _ in $(seq 300); do [ "$(count)" = "$ROOMS" ] && break; sleep 0.1; done
[ "$(count)" = "$ROOMS" ] || { echo "only $(count) of $ROOMS rooms came up"; tail "$WORK/server.log"; exit 1; }
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP_PORT/rest/v1/uc/conferences?mask=confid" |
  python3 -c 'import sys,json; [print("/rest/v1/uc/conferences/"+r["confid"]) for r in json.load(sys.stdin)]' > "$WORK/get_paths"

bench_machine_line
echo "server: $ROOMS live rooms, one SIPp caller each; client: $CONNS connections, $RATE req/s for ${DURATION}s"
LOAD="$T/release/examples/rest_load --addr 127.0.0.1:$HTTP_PORT --token $TOKEN --rate $RATE --seconds $DURATION --connections $CONNS"
$LOAD --seconds 2 --path /rest/v1/uc/conferences >/dev/null   # warm-up
echo "== list: GET /rest/v1/uc/conferences ($ROOMS rooms per response)"
$LOAD --path /rest/v1/uc/conferences
echo "== get: GET /rest/v1/uc/conferences/{confid} (cycling through the $ROOMS rooms)"
$LOAD --paths-file "$WORK/get_paths"
echo "== participants: GET /rest/v1/uc/conferences/{confid}/participants"
sed 's|$|/participants|' "$WORK/get_paths" > "$WORK/part_paths"
$LOAD --paths-file "$WORK/part_paths"
echo "server: $(grep -ci 'error\|panic' "$WORK/server.log" || true) error/panic lines in its log; rooms still live: $(count)"
