#!/usr/bin/env bash
# SEMS webconference XML-RPC: roomInfo calls per second against a running-from-scratch
# server (see BENCHMARKS.md). Env: PROFILE=release|dev (default release), SECONDS_=10,
# CONNS=8, PORT_BASE=46000.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
DURATION=${SECONDS_:-10}
CONNS=${CONNS:-8}
BASE=${PORT_BASE:-46000}
flag=(); dir=debug
if [ "$PROFILE" = release ]; then flag=(--release); dir=release; fi
nice -n 19 cargo build "${flag[@]}" -p switchboard -p api --example xmlrpc_load --bin switchboard
bin=${CARGO_TARGET_DIR:-target}/$dir
work=$(mktemp -d)
RUST_LOG=warn "$bin/switchboard" serve --sip-listen 127.0.0.1:$BASE --http-listen 127.0.0.1:$((BASE+1)) \
    --rtp-ports $((BASE+100))-$((BASE+199)) --data-dir "$work/data" --xmlrpc-listen 127.0.0.1:$((BASE+2)) \
    >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:$((BASE+1))/health >/dev/null && break; sleep 0.1; done
pin=$(python3 -c "import xmlrpc.client as x; print(x.ServerProxy('http://127.0.0.1:$((BASE+2))/').di('webconference','roomCreate','4711')[2])")
"$bin/examples/xmlrpc_load" --addr 127.0.0.1:$((BASE+2)) --room 4711 --pin "$pin" --seconds "$DURATION" --connections "$CONNS"
