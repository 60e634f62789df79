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
source "$(dirname "$0")/lib.sh"
bench_own_session "$@"
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}
BIN=${SB_BIN:-$T/release/switchboard}
LOAD=${SB_LOAD_BIN:-$T/release/sb-load}
bench_need_build "cargo build --release -p switchboard -p loadgen" "$BIN" "$LOAD"
WORKERS=${WORKERS:-1}
PORT_MODE=${PORT_MODE:-per-leg}
SIP_PORT=${SIP_PORT:-7160}; HTTP_PORT=${HTTP_PORT:-7180}
WORK=$(mktemp -d /tmp/sb-room.XXXXXX)
# Many legs: in per-leg mode one RTP+RTCP port pair and two fds per leg on the server;
# one fd per participant in sb-load.
bench_raise_fd_limit
"$BIN" serve --sip-listen 127.0.0.1:$SIP_PORT --http-listen 127.0.0.1:$HTTP_PORT \
  --rtp-ports ${RTP_PORTS:-47000-64999} --data-dir "$WORK/data" --media-workers "$WORKERS" --media-port-mode "$PORT_MODE" 2>"$WORK/server.log" &
SRV=$!
cleanup() { kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
bench_wait_for_server "$WORK/server.log"
bench_machine_line
echo "server: $BIN --media-workers $WORKERS --media-port-mode $PORT_MODE (pid $SRV)"
args=()
for x in "$@"; do args+=("${x//PORT/$SIP_PORT}"); done
echo "scheduler: $(cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup')"
"$LOAD" --server-pid $SRV "${args[@]}"
echo "server: peak RSS $(awk '/VmHWM/{print $2, $3}' /proc/$SRV/status), threads $(awk '/Threads/{print $2}' /proc/$SRV/status), \
$(grep -ci 'error\|panic' "$WORK/server.log" || true) error/panic lines in its log"
[ -z "${KEEP:-}" ] || echo "work dir: $WORK"
