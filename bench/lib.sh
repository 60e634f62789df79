# The steps the bench scripts share, sourced by each of them (after `set -euo pipefail`):
#   source "$(dirname "$0")/lib.sh"
# Each function says what it reads and sets. Only steps that are the same everywhere
# live here; each script's server options, load and report stay in the script.

# NICE=-10: runs the script again in a session of its own, whose scheduler autogroup
# gets that nice level (root only; with sched_autogroup on, plain `nice` only ranks
# processes inside one session). On a box shared with builds this approximates a quiet
# machine; say so when you quote such figures. Call it first, with the script's
# arguments: it may exec.
bench_own_session() {
  if [ -n "${NICE:-}" ] && [ -z "${SB_OWN_SESSION:-}" ]; then
    SB_OWN_SESSION=1 exec setsid -w "$0" "$@"
  fi
  if [ -n "${NICE:-}" ]; then
    echo "$NICE" > /proc/self/autogroup 2>/dev/null || echo "warning: could not set autogroup nice" >&2
  fi
}

# Exits 2 unless every file after the first argument is executable: the release
# build being measured. $1: the cargo command that builds them.
bench_need_build() {
  local how=$1 b
  shift
  for b in "$@"; do
    [ -x "$b" ] || { echo "build first: $how ($b missing)" >&2; exit 2; }
  done
}

# Many calls are many sockets, on the server and in the load tool.
bench_raise_fd_limit() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

# Waits up to 10 s for the server ($SRV) to answer /health on 127.0.0.1:$HTTP_PORT;
# if it has died instead, prints its log ($1) and exits 1.
bench_wait_for_server() {
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
  kill -0 "$SRV" 2>/dev/null || { echo "server did not start:"; cat "$1"; exit 1; }
}

# The report's first line: what the figures were measured on, and how busy it was.
bench_machine_line() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
}

# CPU time process $1 has used so far (user + system), in clock ticks (getconf CLK_TCK).
bench_cpu_ticks() {
  awk '{print $14+$15}' "/proc/$1/stat"
}

# For the REST benches: ROOMS live rooms 1..ROOMS, each held by one SIPp caller
# (bench/rest_rooms_uac.xml, sending low noise) from 127.0.0.1:SIPP_PORT to the server
# on SIP_PORT; sets SIPP to SIPp's pid. Reads WORK; run from the repository root.
bench_start_room_callers() {
  { echo SEQUENTIAL; seq 1 "$ROOMS"; } > "$WORK/rooms.csv"
  # One second of low noise in A-law (SIPp loops it); SIPp reads it relative to its cwd.
  python3 -c 'import random,sys; sys.stdout.buffer.write(bytes(0xD5 ^ random.randint(0, 3) for _ in range(8000)))' > "$WORK/quiet.alaw"
  local scenario=$PWD/bench/rest_rooms_uac.xml
  (cd "$WORK" && exec sipp 127.0.0.1:$SIP_PORT -sf "$scenario" -inf "$WORK/rooms.csv" -m "$ROOMS" -l "$ROOMS" -r 50 \
    -d 3600000 -i 127.0.0.1 -p $SIPP_PORT -mi 127.0.0.1 -mp $((SIPP_PORT + 10)) -nostdin \
    -trace_err -error_file "$WORK/sipp_errors.log" >"$WORK/sipp.log" 2>&1) &
  SIPP=$!
}

# For the REST benches, as their EXIT trap: stops SIPp ($SIPP) and the server ($SRV),
# either of which may not have started, and removes WORK unless KEEP=1.
bench_rest_cleanup() {
  [ -z "$SIPP" ] || { kill "$SIPP" 2>/dev/null; wait "$SIPP" 2>/dev/null || true; }
  [ -z "$SRV" ] || { kill "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null || true; }
  [ -n "${KEEP:-}" ] && echo "work dir: $WORK" || rm -rf "$WORK"
}
