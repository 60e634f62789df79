#!/usr/bin/env bash
# Call setup rate: SIPp places INVITE->200->ACK->BYE calls to `echo` (no RTP) at rising
# rates; prints, per rate, calls attempted/succeeded/failed, the achieved rate, and the
# CPU time of the server and of SIPp (which shares the 2-core box and may saturate first).
# Usage: bench/call_setup.sh [RATES...]   (default: 500 1000 2000 3000 4000 5000)
# Env: SECS (seconds per rate, default 10), WORKERS (--media-workers, default 1),
#      SB_BIN, SIP_PORT (7060), HTTP_PORT (7080), RTP_PORTS (50000-53999),
#      NICE=-10: own session with that scheduler-autogroup nice (see bench/room_load.sh).
# Needs: sipp, bc, curl, a release build (cargo build --release -p switchboard).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_own_session "$@"
cd "$(dirname "$0")/.."
BIN=${SB_BIN:-${CARGO_TARGET_DIR:-target}/release/switchboard}
bench_need_build "cargo build --release -p switchboard" "$BIN"
RATES=("$@"); [ ${#RATES[@]} -gt 0 ] || RATES=(500 1000 2000 3000 4000 5000)
SECS=${SECS:-10}
WORKERS=${WORKERS:-1}
WORK=$(mktemp -d /tmp/sb-bench.XXXXXX)
SIP_PORT=${SIP_PORT:-7060}; HTTP_PORT=${HTTP_PORT:-7080}
bench_raise_fd_limit
"$BIN" serve --sip-listen 127.0.0.1:$SIP_PORT --http-listen 127.0.0.1:$HTTP_PORT \
  --rtp-ports ${RTP_PORTS:-50000-53999} --data-dir "$WORK/data" --media-workers "$WORKERS" 2>"$WORK/server.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true' EXIT
bench_wait_for_server "$WORK/server.log"
ticks=$(getconf CLK_TCK)
bench_machine_line
echo "server: $BIN --media-workers $WORKERS (pid $SRV); ${SECS} s per rate; work dir $WORK"
echo "scheduler: $(cat /proc/self/autogroup 2>/dev/null || echo 'no autogroup')"
printf "%6s %7s %7s %6s %9s %8s %10s %8s %9s %6s\n" \
  rate calls ok failed achieved srv_cpu srv_us/call sipp_cpu retrans load1
for r in "${RATES[@]}"; do
  n=$((r * SECS))
  t0=$(bench_cpu_ticks $SRV)
  w0=$(date +%s.%N)
  # SIPp's own CPU: bash's `time` of the child (user+sys), in seconds.
  TIMEFORMAT='%U %S'
  { time sipp 127.0.0.1:$SIP_PORT -sf bench/uac_setup.xml -s echo -i 127.0.0.1 -p 25061 \
      -r "$r" -m "$n" -l $((r * 2)) -nostdin -timeout $((SECS * 3))s \
      -trace_stat -fd 1 -stf "$WORK/stat_$r.csv" >"$WORK/sipp_$r.out" 2>&1 || true ; } 2>"$WORK/time_$r"
  w1=$(date +%s.%N)
  t1=$(bench_cpu_ticks $SRV)
  last=$(tail -1 "$WORK/stat_$r.csv")
  # Column numbers from the SIPp 3.6 stat header: 16 SuccessfulCall(C), 18 FailedCall(C),
  # 58 Retransmissions(C).
  ok=$(echo "$last" | awk -F';' '{print $16}')
  failed=$(echo "$last" | awk -F';' '{print $18}')
  retrans=$(echo "$last" | awk -F';' '{print $58}')   # Retransmissions(C)
  srv=$(echo "scale=2; ($t1-$t0)/$ticks" | bc)
  per=$(echo "scale=1; ($t1-$t0)/$ticks*1000000/($ok+1)" | bc)
  sippcpu=$(awk '{printf "%.2f", $1+$2}' "$WORK/time_$r")
  # Achieved = successful calls over the wall time of the SIPp run (includes the tail).
  ach=$(echo "scale=0; $ok/($w1-$w0)" | bc)
  printf "%6s %7s %7s %6s %9s %8s %10s %8s %9s %6s\n" \
    "$r" "$n" "$ok" "$failed" "$ach" "$srv" "$per" "$sippcpu" "$retrans" "$(cut -d' ' -f1 /proc/loadavg)"
done
