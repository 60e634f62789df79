#!/usr/bin/env bash
# Webhook delivery throughput and lag (issue 12 item 7, docs/events.md "Benchmarks").
#
# Events: SIPp (tests/kit/sipp/uac_register.xml) registers one user at RATE a second,
# each REGISTER (new Call-ID, digest) a `binding_saved` engine event, so the server's
# outbox gets RATE events a second of the user's domain. A webhook of that domain points
# at a receiver (Python http.server, one thread per connection) that checks every
# signature (HMAC-SHA256) and logs the arrival time. Two phases per rate:
#   live:    the receiver answers 200 throughout: lag = arrival - the event's `ts`
#            (the moment the signalling task queued it), as p50/p95/p99/max, and the
#            delivery rate while the load runs;
#   backlog: the receiver answers 503 while RATE*SECS events pile up, then 200: how fast
#            the deliverer drains a backlog (events/s, first to last delivery).
# Also checked: every seq 1..N arrived, every signature was good, no event was dropped.
# Usage: bench/webhook_load.sh [RATES...]   (default: 1000)
# Env: SECS (seconds of load, default 10), SB_BIN, SIP_PORT (7260), HTTP_PORT (7280).
# Needs: sipp, curl, python3, a build (cargo build -p switchboard, or --release).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
BIN=${SB_BIN:-${CARGO_TARGET_DIR:-target}/release/switchboard}
bench_need_build "cargo build --release -p switchboard" "$BIN"
RATES=("$@"); [ ${#RATES[@]} -gt 0 ] || RATES=(1000)
SECS=${SECS:-10}
DOMAIN=bench.test
WORK=$(mktemp -d /tmp/sb-hookbench.XXXXXX)
SIP_PORT=${SIP_PORT:-7260}; HTTP_PORT=${HTTP_PORT:-7280}
bench_raise_fd_limit

cat > "$WORK/receiver.py" <<'PY'
import hashlib, hmac, http.server, json, os, socketserver, sys, time
port_file, secret_file, log_file, ok_file = sys.argv[1:5]
secret = None
log = open(log_file, "a", buffering=1)  # line-buffered: the report reads it while we run
class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global secret
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if secret is None:
            secret = open(secret_file).read().strip()
        ts = self.headers["X-Switchboard-Timestamp"]
        want = "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        good = hmac.compare_digest(want, self.headers["X-Switchboard-Signature"])
        ok = os.path.exists(ok_file)
        if ok and good:
            e = json.loads(body)
            log.write(f"{e['seq']} {e['ts']} {time.time() * 1000:.1f}\n")
        elif not good:
            log.write("BAD\n")
        self.send_response(200 if ok and good else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), Hook)
open(port_file, "w").write(str(s.server_address[1]))
try:
    s.serve_forever()
finally:
    log.flush()
PY

cat > "$WORK/report.py" <<'PY'
import sys
log, n_expected, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows, bad = [], 0
for line in open(log):
    if line.startswith("BAD"):
        bad += 1
        continue
    seq, ts, at = line.split()
    rows.append((int(seq), int(ts), float(at)))
seqs = sorted({r[0] for r in rows})
gaps = n_expected - len(seqs)
dups = len(rows) - len(seqs)
arr = sorted(r[2] for r in rows)
span = (arr[-1] - arr[0]) / 1000 if len(arr) > 1 else float("nan")
lag = sorted(r[2] - r[1] for r in rows)
q = lambda p: lag[min(len(lag) - 1, int(p * len(lag)))]
print(f"{phase:8} events={len(seqs)}/{n_expected} missing={gaps} repeats={dups} bad_signatures={bad} "
      f"delivery_rate={len(rows) / span:.0f}/s over {span:.1f}s "
      f"lag_ms p50={q(0.5):.0f} p95={q(0.95):.0f} p99={q(0.99):.0f} max={lag[-1]:.0f}")
PY

"$BIN" domains add $DOMAIN --data-dir "$WORK/data" >/dev/null
"$BIN" users add u5001 --domain $DOMAIN --ext 5001 --password pw-5001 --data-dir "$WORK/data" >/dev/null
cat > "$WORK/switchboard.toml" <<TOML
[security]
lockout_ip_failures = 1000000
[mx]
admin_listen = ""
[xmlrpc]
listen = ""
[events]
retry_initial_ms = 200
retry_max_ms = 1000
TOML
RUST_LOG=warn "$BIN" serve --config "$WORK/switchboard.toml" --sip-listen 127.0.0.1:$SIP_PORT \
  --http-listen 127.0.0.1:$HTTP_PORT --data-dir "$WORK/data" 2>"$WORK/server.log" &
SRV=$!
REC=
trap 'kill $SRV 2>/dev/null; [ -z "$REC" ] || kill $REC 2>/dev/null; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "work dir: $WORK" || rm -rf "$WORK"' EXIT
bench_wait_for_server "$WORK/server.log"

python3 "$WORK/receiver.py" "$WORK/port" "$WORK/secret" "$WORK/received.log" "$WORK/ok" &
REC=$!
for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
HOOK=$(curl -sf -X POST "http://127.0.0.1:$HTTP_PORT/v1/webhooks" -H 'Content-Type: application/json' \
  -d "{\"url\":\"http://127.0.0.1:$(cat "$WORK/port")/hook\",\"domain\":\"$DOMAIN\"}")
ID=$(echo "$HOOK" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "$HOOK" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])' > "$WORK/secret"

bench_machine_line
echo "server: $BIN (pid $SRV); ${SECS} s of load per phase; work dir $WORK"
state() { curl -sf "http://127.0.0.1:$HTTP_PORT/v1/webhooks/$ID"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
wait_drained() {
  for _ in $(seq 1200); do
    [ "$(state | field pending)" = 0 ] && return 0
    sleep 0.1
  done
  echo "not drained after 120 s: $(state)"
}
register() {
  local r=$1 n=$2
  sipp 127.0.0.1:$SIP_PORT -sf tests/kit/sipp/uac_register.xml -s u5001 -au u5001 -ap pw-5001 -key domain $DOMAIN \
    -i 127.0.0.1 -p 25261 -r "$r" -m "$n" -l $((r * 2)) -nostdin -timeout $((SECS * 3))s >"$WORK/sipp.out" 2>&1 || true
}
for r in "${RATES[@]}"; do
  n=$((r * SECS))
  # live
  : > "$WORK/received.log"; touch "$WORK/ok"
  first=$(( $(state | field last_seq) + 1 ))
  register "$r" "$n"
  wait_drained
  last=$(state | field last_seq)
  sleep 0.5
  awk -v f="$first" '$1 >= f || /BAD/' "$WORK/received.log" > "$WORK/live.log"
  python3 "$WORK/report.py" "$WORK/live.log" $((last - first + 1)) "live@$r"
  # backlog
  rm -f "$WORK/ok"; : > "$WORK/received.log"
  first=$((last + 1))
  register "$r" "$n"
  sleep 1
  last=$(state | field last_seq)
  touch "$WORK/ok"
  wait_drained
  sleep 0.5
  python3 "$WORK/report.py" "$WORK/received.log" $((last - first + 1)) "backlog"
done
echo "dropped by the outbox queue: $(grep -c 'DROPPED' "$WORK/server.log" || true) log lines; server CPU $(( $(bench_cpu_ticks $SRV) / $(getconf CLK_TCK) )) s"
