#!/usr/bin/env bash
# Two-party calls end to end: sb-load is both ends of every call. Its callers dial
# numbers (sip:+1555<i>@server) with a PCMU offer; the server (trusted callers, so no
# digest) bridges each call to its gateway, which is sb-load's callee UAS (--answer-on);
# callee i answers in CODEC and both sides stream 20 ms RTP until the end. So each call is
# a real B2BUA call, two legs, RTP both ways through the server: PCMU <-> PCMU takes the
# relay path, PCMU <-> G.722 / Opus is transcoded. sb-load measures both directions (loss,
# share of the nominal 50 pps received) and the server's CPU over the window; calls per
# core = calls up / (server CPU-seconds per second). A fresh server per run.
# Capacity of this kind of box: N calls are 2N RTP streams each way, and sb-load costs
# about 0.25 core per 1,000 streams (BENCHMARKS.md, "Room load"), all on the same
# machine as the server. So a 5,000-call run (10,000 streams) does not fit 2 cores; take
# calls per core from the largest runs where the server kept up, not from N itself.
#
# Usage: bench/two_party_load.sh [CALLS...]      (default: 500 1000 2000)
#   NICE=-10 PORT_MODE=shared THREADS=2 bench/two_party_load.sh 500 1000 1500 2000
#   CODECS="g722 opus" bench/two_party_load.sh 100 200 400
#   CODECS=g722 SECS=10 bench/two_party_load.sh 20      (a quick functional check)
# Env: CODECS   callee codecs, each a run per call count (default "pcmu g722 opus";
#               also pcma); the callers always offer PCMU
#      SECS     measurement window per run (default 20); WARMUP (default 3)
#      RATE     call setups per second (default 200; BYEs at the same rate)
#      THREADS  sb-load RTP threads (default 1; raise it if sb-load cannot keep up:
#               its own "send lateness" and skipped ticks in the log)
#      VOICE    what the callees send: noise (default, a listening party) or tone
#      WORKERS  --media-workers (default 1 = per-core figure, 0 = one per core)
#      PORT_MODE --media-port-mode (per-leg, the default: 4 server ports per call; shared)
#      SIP_PORT (7260), HTTP_PORT (7280), GW_PORT (callee UAS, 30260),
#      RTP_PORTS (server, on 127.0.0.1; default 40000-64999 = 6,250 calls per-leg),
#      LOAD_RTP_BASE (sb-load's first RTP port on 127.0.0.2, default 31000; it uses two
#               even ports per call: 31000 + 4*CALLS must stay under 65535),
#      SB_BIN, SB_LOAD_BIN, KEEP=1 (keep the work dir: server log and sb-load output),
#      NICE (see bench/room_load.sh).
# Needs: curl, a release build (cargo build --release -p switchboard -p loadgen).
# Output: per run the full sb-load report in the work dir, and one table line:
#   calls, codec pair, path, verbatim % (share of the callers' packets that carry a
#   callee's payload byte for byte: ~100 on the relay path, 0 when transcoded), calls up,
#   loss % callers/callees, % of nominal packets received callers/callees, server CPU %
#   of one core, calls per server core ("-" when the server did not keep up: under 99 %
#   of nominal received by either side).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_own_session "$@"
cd "$(dirname "$0")/.."
T=${CARGO_TARGET_DIR:-target}
BIN=${SB_BIN:-$T/release/switchboard}
LOAD=${SB_LOAD_BIN:-$T/release/sb-load}
bench_need_build "cargo build --release -p switchboard -p loadgen" "$BIN" "$LOAD"
CALLS=("$@"); [ ${#CALLS[@]} -gt 0 ] || CALLS=(500 1000 2000)
read -r -a CODEC_LIST <<<"${CODECS:-pcmu g722 opus}"
SECS=${SECS:-20}; WARMUP=${WARMUP:-3}; RATE=${RATE:-200}; THREADS=${THREADS:-1}; VOICE=${VOICE:-noise}
WORKERS=${WORKERS:-1}; PORT_MODE=${PORT_MODE:-per-leg}
SIP_PORT=${SIP_PORT:-7260}; HTTP_PORT=${HTTP_PORT:-7280}; GW_PORT=${GW_PORT:-30260}
RTP_PORTS=${RTP_PORTS:-40000-64999}; LOAD_RTP_BASE=${LOAD_RTP_BASE:-31000}
LOAD_IP=127.0.0.2
WORK=$(mktemp -d /tmp/sb-two-party.XXXXXX)
bench_raise_fd_limit
# The callers (sb-load on 127.0.0.2) are a trusted network: they dial numbers without
# digest, and numbers go to the gateway, which is sb-load's callee UAS.
cat >"$WORK/sb.toml" <<TOML
[security]
trusted_networks = ["$LOAD_IP/32"]
[mx]
admin_listen = ""
TOML
SRV=
cleanup() { [ -z "$SRV" ] || { kill "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null || true; }; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
field() { grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2 | tr -d '"'; }

bench_machine_line
echo "server: $BIN --media-workers $WORKERS --media-port-mode $PORT_MODE --gateway sip:$LOAD_IP:$GW_PORT; ${SECS} s window, ${RATE} setups/s, callees send $VOICE, sb-load $THREADS RTP thread(s)"
printf "%6s %-10s %-9s %9s %6s %15s %17s %8s %10s %6s\n" calls codecs path verbatim% up "loss% a/b" "received% a/b" srv_cpu% calls/core load1
for codec in "${CODEC_LIST[@]}"; do
  for n in "${CALLS[@]}"; do
    run="$WORK/${codec}_$n"
    mkdir -p "$run"
    # Another server on our HTTP port would answer the health check below and be measured.
    if curl -sf http://127.0.0.1:$HTTP_PORT/health >/dev/null 2>&1; then
      echo "something already answers on 127.0.0.1:$HTTP_PORT (HTTP_PORT=...)" >&2; exit 1
    fi
    "$BIN" serve --config "$WORK/sb.toml" --sip-listen 127.0.0.1:$SIP_PORT --http-listen 127.0.0.1:$HTTP_PORT \
      --gateway "sip:$LOAD_IP:$GW_PORT" --rtp-ports "$RTP_PORTS" --data-dir "$run/data" \
      --media-workers "$WORKERS" --media-port-mode "$PORT_MODE" 2>"$run/server.log" &
    SRV=$!
    bench_wait_for_server "$run/server.log"
    "$LOAD" --server-pid $SRV --target "sip:+1555{call}@127.0.0.1:$SIP_PORT" --calls "$n" \
      --answer-on "$LOAD_IP:$GW_PORT" --callee-codec "$codec" --callee-voice "$VOICE" \
      --local-ip $LOAD_IP --rtp-base "$LOAD_RTP_BASE" --rate "$RATE" --threads "$THREADS" \
      --warmup "$WARMUP" --duration "$SECS" >"$run/sb-load.out" 2>&1 || true
    rss=$(awk '/VmHWM/{print $2 $3}' /proc/$SRV/status 2>/dev/null || echo -)
    kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true; SRV=
    res=$(grep '^RESULT ' "$run/sb-load.out" | head -1 || true)
    if [ -z "$res" ]; then
      echo "sb-load gave no RESULT for $n calls, $codec:"; tail -20 "$run/sb-load.out"; continue
    fi
    cpc=$(echo "$res" | field calls_per_server_core); [ "$cpc" != null ] || cpc=-
    printf "%6s %-10s %-9s %9s %6s %15s %17s %8s %10s %6s\n" "$n" "pcmu/$codec" "$(echo "$res" | field path)" \
      "$(echo "$res" | field caller_verbatim_pct)" "$(echo "$res" | field calls_up)" \
      "$(echo "$res" | field caller_loss_pct)/$(echo "$res" | field callee_loss_pct)" \
      "$(echo "$res" | field caller_delivered_pct)/$(echo "$res" | field callee_delivered_pct)" \
      "$(echo "$res" | field server_cpu_pct)" "$cpc" "$(cut -d' ' -f1 /proc/loadavg)"
    errs=$(grep -ci 'error\|panic' "$run/server.log" || true)
    echo "        established $(echo "$res" | field established)/$n, failed $(echo "$res" | field failed), callee answered $(echo "$res" | field callee_answered) acked $(echo "$res" | field callee_acked) byes $(echo "$res" | field callee_byes); server peak RSS $rss, $errs error/panic log lines"
    [ -z "${VERBOSE:-}" ] || cat "$run/sb-load.out"
  done
done
[ -z "${KEEP:-}" ] || echo "work dir: $WORK"
