#!/usr/bin/env bash
# REGISTER throughput with digest authentication: SIPp (tests/kit/sipp/uac_register.xml)
# registers one user, made with the admin CLI, at rising rates, each registration a new
# Call-ID: REGISTER -> 401 -> REGISTER with MD5 digest (qop=auth) -> 200, i.e. two
# requests, a nonce check, an HA1 lookup and a binding saved (persisted by the store).
# (One user: SIPp 3.6.1 takes no injection-file fields inside [authentication].)
# Prints, per rate: registrations attempted/succeeded/failed, the achieved rate, the
# server's CPU time per registration, SIPp's CPU, retransmissions and the load.
# The figure to report is the highest rate with 0 failures.
# Usage: bench/register_load.sh [RATES...]   (default: 500 1000 2000 3000 4000)
# Env: SECS (seconds per rate, default 10), SB_BIN,
#      SIP_PORT (7160), HTTP_PORT (7180).
# Needs: sipp, bc, curl, a release build (cargo build --release -p switchboard).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
BIN=${SB_BIN:-${CARGO_TARGET_DIR:-target}/release/switchboard}
bench_need_build "cargo build --release -p switchboard" "$BIN"
RATES=("$@"); [ ${#RATES[@]} -gt 0 ] || RATES=(500 1000 2000 3000 4000)
SECS=${SECS:-10}
DOMAIN=bench.test
WORK=$(mktemp -d /tmp/sb-regbench.XXXXXX)
SIP_PORT=${SIP_PORT:-7160}; HTTP_PORT=${HTTP_PORT:-7180}
bench_raise_fd_limit

"$BIN" domains add $DOMAIN --data-dir "$WORK/data" >/dev/null
"$BIN" users add u5001 --domain $DOMAIN --ext 5001 --password pw-5001 --data-dir "$WORK/data" >/dev/null

# Lock-outs count failures only; a clean run has none, but keep the address limit out
# of the way of retransmission storms at overload.
cat > "$WORK/switchboard.toml" <<TOML
[security]
lockout_ip_failures = 1000000
TOML
RUST_LOG=warn "$BIN" serve --config "$WORK/switchboard.toml" --sip-listen 127.0.0.1:$SIP_PORT \
  --http-listen 127.0.0.1:$HTTP_PORT --data-dir "$WORK/data" 2>"$WORK/server.log" &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true' EXIT
bench_wait_for_server "$WORK/server.log"
ticks=$(getconf CLK_TCK)
bench_machine_line
echo "server: $BIN (pid $SRV); ${SECS} s per rate; work dir $WORK"
printf "%6s %7s %7s %6s %9s %8s %11s %8s %8s %6s\n" \
  rate regs ok failed achieved srv_cpu srv_us/reg sipp_cpu retrans load1
for r in "${RATES[@]}"; do
  n=$((r * SECS))
  t0=$(bench_cpu_ticks $SRV)
  w0=$(date +%s.%N)
  TIMEFORMAT='%U %S'
  { time sipp 127.0.0.1:$SIP_PORT -sf tests/kit/sipp/uac_register.xml -s u5001 -au u5001 -ap pw-5001 -key domain $DOMAIN \
      -i 127.0.0.1 -p 25161 -r "$r" -m "$n" -l $((r * 2)) -nostdin -timeout $((SECS * 3))s \
      -trace_stat -fd 1 -stf "$WORK/stat_$r.csv" >"$WORK/sipp_$r.out" 2>&1 || true ; } 2>"$WORK/time_$r"
  w1=$(date +%s.%N)
  t1=$(bench_cpu_ticks $SRV)
  last=$(tail -1 "$WORK/stat_$r.csv")
  # SIPp 3.6 stat columns: 16 SuccessfulCall(C), 18 FailedCall(C), 58 Retransmissions(C).
  ok=$(echo "$last" | awk -F';' '{print $16}')
  failed=$(echo "$last" | awk -F';' '{print $18}')
  retrans=$(echo "$last" | awk -F';' '{print $58}')
  srv=$(echo "scale=2; ($t1-$t0)/$ticks" | bc)
  per=$(echo "scale=1; ($t1-$t0)/$ticks*1000000/($ok+1)" | bc)
  sippcpu=$(awk '{printf "%.2f", $1+$2}' "$WORK/time_$r")
  ach=$(echo "scale=0; $ok/($w1-$w0)" | bc)
  printf "%6s %7s %7s %6s %9s %8s %11s %8s %8s %6s\n" \
    "$r" "$n" "$ok" "$failed" "$ach" "$srv" "$per" "$sippcpu" "$retrans" "$(cut -d' ' -f1 /proc/loadavg)"
done
