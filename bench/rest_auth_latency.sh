#!/usr/bin/env bash
# The conference list's latency with each kind of bearer credential: the static
# --api-token (superuser), an API key of the server's domain (a domain admin: key
# checked against the store, then remembered, and the list filtered to its domain),
# and a JWT from POST /auth for an admin user of that domain (signature checked, then
# remembered; the list filtered to the domain).
# Same set-up as bench/rest_latency.sh: a release server with ROOMS live rooms (one
# SIPp caller each), then crates/api/examples/rest_load.rs open-loop at RATE req/s.
# The two credentials are measured alternately, twice each, so background load on a
# shared box hits both alike.
#
# Usage: bench/rest_auth_latency.sh   (env: RATE=10000 DURATION=10 ROOMS=100 CONNS=32,
#        SIP_PORT 7360, HTTP_PORT 7380, RTP_PORTS 47000-47999, KEEP=1 keeps the work dir)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
RATE=${RATE:-10000}; DURATION=${DURATION:-10}; ROOMS=${ROOMS:-100}; CONNS=${CONNS:-32}
SIP_PORT=${SIP_PORT:-7360}; HTTP_PORT=${HTTP_PORT:-7380}; SIPP_PORT=$((SIP_PORT + 1))
TOKEN=bench-token
T=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p switchboard
cargo build --release -q -p api --example rest_load
WORK=$(mktemp -d /tmp/sb-rest-auth.XXXXXX)
SRV=; SIPP=
trap bench_rest_cleanup EXIT
api() { curl -sf -H "Authorization: Bearer $1" "${@:2}"; }
start() {
  "$T/release/switchboard" serve --sip-listen 127.0.0.1:$SIP_PORT --http-listen 127.0.0.1:$HTTP_PORT \
    --rtp-ports "${RTP_PORTS:-47000-47999}" --data-dir "$WORK/data" --api-token $TOKEN 2>>"$WORK/server.log" &
  SRV=$!
  bench_wait_for_server "$WORK/server.log"
}
start
# the server's own domain (where rooms dialled at its address belong) and an admin key of it
api $TOKEN -X POST -H 'Content-Type: application/json' -d '{"name":"switchboard.local"}' \
  http://127.0.0.1:$HTTP_PORT/v1/domains >/dev/null || true
KEY=$(api $TOKEN -X POST -H 'Content-Type: application/json' -d '{"name":"bench-admin","domain":"switchboard.local"}' \
  http://127.0.0.1:$HTTP_PORT/v1/keys | python3 -c 'import sys,json; print(json.load(sys.stdin)["key"])')
# an admin user and an app, and a JWT for the user through POST /auth (password grant)
api $TOKEN -X POST -H 'Content-Type: application/json' \
  -d '{"login":"benchadmin","password":"bench-pass-1","domain":"switchboard.local","role":"admin"}' \
  http://127.0.0.1:$HTTP_PORT/v1/users >/dev/null
api $TOKEN -X POST -H 'Content-Type: application/json' \
  -d '{"client_id":"bench-app","secret":"bench-secret-1","domain":"switchboard.local"}' \
  http://127.0.0.1:$HTTP_PORT/v1/apps >/dev/null
# restart, so the directory is certainly the one with the domain (whatever the reload interval)
kill $SRV; wait $SRV 2>/dev/null || true; start
JWT=$(curl -sf -u bench-app:bench-secret-1 -d 'grant_type=password&username=benchadmin&password=bench-pass-1' \
  http://127.0.0.1:$HTTP_PORT/auth | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')

bench_start_room_callers
count() { api "$1" "http://127.0.0.1:$HTTP_PORT/rest/v1/uc/conferences?countonly=true" | tr -dc 0-9; }
for _ in $(seq 300); do [ "$(count $TOKEN)" = "$ROOMS" ] && break; sleep 0.1; done
[ "$(count $TOKEN)" = "$ROOMS" ] || { echo "only $(count $TOKEN) of $ROOMS rooms came up"; tail "$WORK/server.log"; exit 1; }
[ "$(count "$KEY")" = "$ROOMS" ] || { echo "the domain key sees $(count "$KEY") of $ROOMS rooms"; exit 1; }
[ "$(count "$JWT")" = "$ROOMS" ] || { echo "the domain admin's JWT sees $(count "$JWT") of $ROOMS rooms"; exit 1; }

bench_machine_line
echo "server: $ROOMS live rooms, one SIPp caller each; client: $CONNS connections, $RATE req/s for ${DURATION}s"
load() { "$T/release/examples/rest_load" --addr 127.0.0.1:$HTTP_PORT --token "$1" --rate $RATE --seconds "${2:-$DURATION}" \
  --connections $CONNS --path /rest/v1/uc/conferences; }
load $TOKEN 2 >/dev/null; load "$KEY" 2 >/dev/null; load "$JWT" 2 >/dev/null   # warm-up
for round in 1 2; do
  echo "== round $round, static token (superuser)"; load $TOKEN | grep RESULT
  echo "== round $round, API key (domain admin)"; load "$KEY" | grep RESULT
  echo "== round $round, JWT from POST /auth (domain admin)"; load "$JWT" | grep RESULT
done
echo "server: $(grep -ci 'error\|panic' "$WORK/server.log" || true) error/panic lines in its log; rooms still live: $(count $TOKEN)"
