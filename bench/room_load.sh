#!/usr/bin/env bash
# Room load: starts a release server, then sb-load places real SIP calls with G.711 RTP
# and measures loss, inter-packet gaps and the server's CPU (see crates/loadgen).
#
# Usage: bench/room_load.sh [sb-load options]
#   bench/room_load.sh --target 'sip:conf-{room}@127.0.0.1:PORT' --rooms 1 --per-room 1000 --rate 500
#   bench/room_load.sh --target sip:echo@127.0.0.1:PORT --calls 2000
#   (PORT is replaced by the server's SIP port.)
# Env: WORKERS (--media-workers; default 1 = per-core figure, 0 = one per core),
#      PORT_MODE (--media-port-mode: per-leg, the default, or shared),
#      SIP_PORT (default 7160), HTTP_PORT (default 7180), RTP_PORTS (server, default 47000-64999: clear of
#      the fixed ports other tests on this box use), SB_BIN, SB_LOAD_BIN,
#      KEEP=1 keeps the work dir (server log),
#      NICE=-10 runs server and sb-load in a session of their own whose scheduler autogroup
#      gets that nice level (root only; with sched_autogroup on, plain `nice` only ranks
#      processes inside one session). On a box shared with builds this approximates a
#      quiet machine; say so when you quote such figures.
# Output: the sb-load report, its RESULT {json} line, and a server line with its peak RSS
# and thread count.
set -euo pipefail
if [ -n "${NICE:-}" ] && [ -z "${SB_OWN_SESSION:-}" ]; then
  SB_OWN_SESSION=1 exec setsid -w "$0" "$@"
fi
if [ -n "${NICE:-}" ]; then
  echo "$NICE" > /proc/self/autogroup 2>/dev/null || echo "warning: could not set autogroup nice" >&2
fi
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}
BIN=${SB_BIN:-$T/release/switchboard}
LOAD=${SB_LOAD_BIN:-$T/release/sb-load}
for b in "$BIN" "$LOAD"; do
  [ -x "$b" ] || { echo "build first: cargo build --release -p switchboard -p loadgen ($b missing)" >&2; exit 2; }
done
WORKERS=${WORKERS:-1}
PORT_MODE=${PORT_MODE:-per-leg}
SIP_PORT=${SIP_PORT:-7160}; HTTP_PORT=${HTTP_PORT:-7180}
WORK=$(mktemp -d /tmp/sb-room.XXXXXX)
# Many legs: in per-leg mode one RTP+RTCP port pair and two fds per leg on the server;
# one fd per participant in sb-load.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$BIN" serve --sip-listen 127.0.0.1:$SIP_PORT --http-listen 127.0.0.1:$HTTP_PORT \
  --rtp-ports ${RTP_PORTS:-47000-64999} --data-dir "$WORK/data" --media-workers "$WORKERS" --media-port-mode "$PORT_MODE" 2>"$WORK/server.log" &
SRV=$!
cleanup() { kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:$HTTP_PORT/health >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 $SRV 2>/dev/null || { echo "server did not start:"; cat "$WORK/server.log"; exit 1; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server: $BIN --media-workers $WORKERS --media-port-mode $PORT_MODE (pid $SRV)"
args=()
for x in "$@"; do args+=("${x//PORT/$SIP_PORT}"); done
echo "scheduler: $(cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup')"
"$LOAD" --server-pid $SRV "${args[@]}"
echo "server: peak RSS $(awk '/VmHWM/{print $2, $3}' /proc/$SRV/status), threads $(awk '/Threads/{print $2}' /proc/$SRV/status), \
$(grep -ci 'error\|panic' "$WORK/server.log" || true) error/panic lines in its log"
[ -z "${KEEP:-}" ] || echo "work dir: $WORK"
