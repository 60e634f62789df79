#!/usr/bin/env bash
# B2BUA call setup rate: SIPp UAC (bench/uac_setup.xml: INVITE -> 200 -> ACK -> BYE, no
# RTP) calls extension 2000 through Switchboard, which rings the registered contact of
# user `uas` (a SIPp UAS, bench/uas_b2bua.xml: 180, 200, then the server's BYE). Each
# call is two legs, a fork and a bridge. Prints per rate: calls, ok, failed (UAC and
# UAS), achieved rate and the server's CPU. Next to bench/call_setup.sh's echo figure.
# Usage: bench/b2bua_setup.sh [RATES...]   (default: 250 500 1000 1500)
# Env: SECS (default 10), WORKERS (--media-workers, default 1), SB_BIN, SIP_PORT (7160),
#      HTTP_PORT (7180), RTP_PORTS (54000-59999), NICE (see bench/room_load.sh).
# Needs: sipp, bc, curl, a release build (cargo build --release -p switchboard).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
bench_own_session "$@"
cd "$(dirname "$0")/.."
BIN=${SB_BIN:-${CARGO_TARGET_DIR:-target}/release/switchboard}
bench_need_build "cargo build --release -p switchboard" "$BIN"
RATES=("$@"); [ ${#RATES[@]} -gt 0 ] || RATES=(250 500 1000 1500)
SECS=${SECS:-10}
WORKERS=${WORKERS:-1}
WORK=$(mktemp -d /tmp/sb-b2bua.XXXXXX)
SIP_PORT=${SIP_PORT:-7160}; HTTP_PORT=${HTTP_PORT:-7180}
UAS_PORT=25170; UAC_PORT=25171
bench_raise_fd_limit
DOMAIN=bench.test
"$BIN" users add uas --domain "$DOMAIN" --ext 2000 --password uas-secret --data-dir "$WORK/data" >/dev/null 2>&1 \
  || { "$BIN" domains add "$DOMAIN" --data-dir "$WORK/data" >/dev/null; "$BIN" users add uas --domain "$DOMAIN" --ext 2000 --password uas-secret --data-dir "$WORK/data" >/dev/null; }
# The caller (SIPp on 127.0.0.1) is a trusted network: no digest on its INVITEs.
cat >"$WORK/sb.toml" <<TOML
[security]
trusted_networks = ["127.0.0.1/32"]
[mx]
admin_listen = ""
TOML
"$BIN" serve --config "$WORK/sb.toml" --sip-listen 127.0.0.1:$SIP_PORT --http-listen 127.0.0.1:$HTTP_PORT --domain "$DOMAIN" \
  --rtp-ports ${RTP_PORTS:-54000-59999} --data-dir "$WORK/data" --media-workers "$WORKERS" 2>"$WORK/server.log" &
SRV=$!
UASPID=
trap 'kill $SRV $UASPID 2>/dev/null; wait $SRV 2>/dev/null || true' EXIT
bench_wait_for_server "$WORK/server.log"
# Register the UAS's port as uas's contact (the REGISTER's source is where calls go).
sipp 127.0.0.1:$SIP_PORT -sf tests/kit/sipp/uac_register.xml -s uas -key domain "$DOMAIN" -au uas -ap uas-secret \
  -i 127.0.0.1 -p $UAS_PORT -m 1 -nostdin -timeout 10s >"$WORK/register.out" 2>&1 || { echo "REGISTER failed"; cat "$WORK/register.out"; exit 1; }
ticks=$(getconf CLK_TCK)
bench_machine_line
echo "server: $BIN --media-workers $WORKERS (pid $SRV); ${SECS} s per rate; work dir $WORK"
printf "%6s %7s %7s %6s %8s %9s %8s %10s %6s\n" rate calls ok failed uas_fail achieved srv_cpu srv_us/call load1
for r in "${RATES[@]}"; do
  n=$((r * SECS))
  sipp -sf bench/uas_b2bua.xml -i 127.0.0.1 -p $UAS_PORT -mp 26170 -m "$n" -nostdin -timeout $((SECS * 3 + 10))s \
    -trace_stat -fd 1 -stf "$WORK/uas_$r.csv" >"$WORK/uas_$r.out" 2>&1 &
  UASPID=$!
  sleep 0.5
  t0=$(bench_cpu_ticks $SRV)
  w0=$(date +%s.%N)
  sipp 127.0.0.1:$SIP_PORT -sf bench/uac_setup.xml -s 2000 -i 127.0.0.1 -p $UAC_PORT \
      -r "$r" -m "$n" -l $((r * 2)) -nostdin -timeout $((SECS * 3))s \
      -trace_stat -fd 1 -stf "$WORK/stat_$r.csv" >"$WORK/sipp_$r.out" 2>&1 || true
  w1=$(date +%s.%N)
  t1=$(bench_cpu_ticks $SRV)
  wait $UASPID 2>/dev/null || true
  UASPID=
  last=$(tail -1 "$WORK/stat_$r.csv")
  ok=$(echo "$last" | awk -F';' '{print $16}')
  failed=$(echo "$last" | awk -F';' '{print $18}')
  uasfail=$(tail -1 "$WORK/uas_$r.csv" | awk -F';' '{print $18}')
  srv=$(echo "scale=2; ($t1-$t0)/$ticks" | bc)
  per=$(echo "scale=1; ($t1-$t0)/$ticks*1000000/($ok+1)" | bc)
  ach=$(echo "scale=0; $ok/($w1-$w0)" | bc)
  printf "%6s %7s %7s %6s %8s %9s %8s %10s %6s\n" "$r" "$n" "$ok" "$failed" "$uasfail" "$ach" "$srv" "$per" "$(cut -d' ' -f1 /proc/loadavg)"
done
