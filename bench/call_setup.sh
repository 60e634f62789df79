#!/usr/bin/env bash
# Call setup rate: SIPp places INVITE->200->ACK->BYE calls to `echo` (no RTP) at rising
# rates; prints, per rate, calls attempted/succeeded/failed and the server's CPU time.
# Usage: bench/call_setup.sh [RATES...]   (default: 500 1000 2000 3000 4000 5000)
# Needs: sipp, a release build (cargo build --release -p switchboard).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SWITCHBOARD_BIN:-${CARGO_TARGET_DIR:-target}/release/switchboard}
[ -x "$BIN" ] || { echo "build first: cargo build --release -p switchboard" >&2; exit 2; }
RATES=("$@"); [ ${#RATES[@]} -gt 0 ] || RATES=(500 1000 2000 3000 4000 5000)
SECS=${SECS:-10}
WORK=$(mktemp -d /tmp/sb-bench.XXXXXX)
SIP_PORT=${SIP_PORT:-15060}; HTTP_PORT=${HTTP_PORT:-18080}
"$BIN" serve --sip-listen 127.0.0.1:$SIP_PORT --http-listen 127.0.0.1:$HTTP_PORT \
  --rtp-ports 30000-59999 --data-dir "$WORK/data" --media-workers 1 2>"$WORK/server.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:$HTTP_PORT/health >/dev/null 2>&1 && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf "%8s %8s %8s %8s %10s %12s\n" rate calls ok failed cpu_s cpu_per_call_us
for r in "${RATES[@]}"; do
  n=$((r * SECS))
  t0=$(awk '{print $14+$15}' /proc/$SRV/stat)
  sipp 127.0.0.1:$SIP_PORT -sf bench/uac_setup.xml -s echo -i 127.0.0.1 -p 25061 -mp 26000 \
      -r "$r" -m "$n" -l $((r * 2)) -nostdin -timeout $((SECS * 3))s -max_socket 65000 \
      -trace_stat -stf "$WORK/stat_$r.csv" >/dev/null 2>&1 || true
  t1=$(awk '{print $14+$15}' /proc/$SRV/stat)
  last=$(tail -1 "$WORK/stat_$r.csv")
  ok=$(echo "$last" | awk -F';' '{print $16}')     # SuccessfulCall(C)
  failed=$(echo "$last" | awk -F';' '{print $18}') # FailedCall(C)
  ticks=$(getconf CLK_TCK)
  cpu=$(echo "scale=2; ($t1-$t0)/$ticks" | bc)
  per=$(echo "scale=1; ($t1-$t0)/$ticks*1000000/($ok+1)" | bc)
  printf "%8s %8s %8s %8s %10s %12s\n" "$r" "$n" "$ok" "$failed" "$cpu" "$per"
done
