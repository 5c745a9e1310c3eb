#!/usr/bin/env bash
# End-to-end echo benchmark: every server under the same loads, one thread each, alternating
# servers round by round, then a table of medians and ratios to wsengine-tokio.
#
#   scripts/bench-echo.sh [ROUNDS] [SECONDS]        (defaults: 3 rounds of 5 s after 1 s warm-up)
#   BENCH_SERVERS="wsengine-tokio fastwebsockets" scripts/bench-echo.sh    (a subset; keep wsengine-tokio,
#   the ratios' base)
#   BENCH_LOADS="10 1048576 1;100 20 1" scripts/bench-echo.sh              (a subset of the loads)
#
# Servers (benches/src/bin/bench_echo.rs, built from crates.io): wsengine-tokio, wsengine-smol,
# tokio-tungstenite, fastwebsockets, tokio-websockets, and raw-tokio (the floor: bytes echoed
# unchanged after the handshake, no WebSocket work). Load generator: benches/src/bin/loadgen.rs
# (raw TCP, pre-built masked frames). Run when named in BENCH_SERVERS: wsengine-uring (core's
# uring_echo example, io_uring, Linux only) and uws (uWebSockets.js from
# ../shared/peers/uws/setup.sh, which installs it with npm). Loads: connections x message size
# [x messages in flight].
#
# Two tables: messages per second, and the server's CPU time per message (user + system, from
# /proc, over the measured window). With two or more CPUs the server is pinned to CPU 0 and the
# load generator to CPU 1 (BENCH_PIN=0 turns that off). Server and load generator share this
# machine: compare ratios, not absolute numbers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
rounds="${1:-3}"
seconds="${2:-5}"
read -r -a servers <<<"${BENCH_SERVERS:-wsengine-tokio wsengine-smol tokio-tungstenite fastwebsockets tokio-websockets raw-tokio}"
# connections size in_flight
loads=("100 20 1" "100 1024 16" "200 16384 1" "500 16384 1" "10 1048576 1")
# BENCH_LOADS="10 1048576 1;100 20 1" runs only those loads.
if [ -n "${BENCH_LOADS:-}" ]; then IFS=';' read -r -a loads <<<"$BENCH_LOADS"; fi
port="${BENCH_PORT:-9310}"

cargo build --release -p wsengine-benches --bin bench_echo --bin loadgen
case " ${servers[*]} " in *" wsengine-uring "*) cargo build --release -p wsengine --example uring_echo ;; esac
uws=""
case " ${servers[*]} " in *" uws "*) uws="$("$root/../shared/peers/uws/setup.sh" | tail -n 1)" ;; esac
bin="$root/target/release"
pin_server=() pin_load=()
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server=(taskset -c 0) pin_load=(taskset -c 1)
fi
# CPU time (user + system) of a process in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_sec="$(getconf CLK_TCK)"
ulimit -n 65536 2>/dev/null || true
results="$(mktemp)"
server_pid=""
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -f "$results"' EXIT

for load in "${loads[@]}"; do
  read -r conns size inflight <<<"$load"
  for round in $(seq 1 "$rounds"); do
    for server in "${servers[@]}"; do
      case "$server" in
        wsengine-uring) "${pin_server[@]}" "$bin/examples/uring_echo" "127.0.0.1:$port" >/dev/null 2>&1 & ;;
        # shellcheck disable=SC2086 # the setup script's command line, split into words
        uws) "${pin_server[@]}" $uws "127.0.0.1:$port" >/dev/null 2>&1 & ;;
        *) "${pin_server[@]}" "$bin/bench_echo" "$server" "127.0.0.1:$port" >/dev/null 2>&1 & ;;
      esac
      server_pid=$!
      for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
      out="$(mktemp)"
      timeout $((seconds + 60)) "${pin_load[@]}" "$bin/loadgen" --url "ws://127.0.0.1:$port/" --connections "$conns" \
        --size "$size" --in-flight "$inflight" --duration "$seconds" --warmup 1 >"$out" 2>&1 &
      load_pid=$!
      # The server's CPU over the measured window: from the end of the warm-up (connections
      # open quickly next to it) to the end of the run.
      sleep 1.2
      cpu0="$(cpu_ticks "$server_pid" 2>/dev/null || echo 0)" t0="$(date +%s.%N)"
      wait "$load_pid" || true
      cpu1="$(cpu_ticks "$server_pid" 2>/dev/null || echo 0)" t1="$(date +%s.%N)"
      line="$(grep RESULT "$out" || true)"
      rm -f "$out"
      kill "$server_pid" 2>/dev/null || true
      wait "$server_pid" 2>/dev/null || true
      server_pid=""
      util="$(python3 -c "import sys; c0, c1, t0, t1, hz = map(float, sys.argv[1:]); print(f'{(c1 - c0) / hz / max(t1 - t0, 1e-9):.4f}')" \
        "$cpu0" "$cpu1" "$t0" "$t1" "$ticks_per_sec")"
      echo "$server $conns $size $inflight ${line:-RESULT failed} server_cpu=$util" | tee -a "$results"
      port=$((port + 1))
    done
  done
done

python3 - "$results" <<'PY'
import re, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
cpu = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    server, conns, size, inflight, rest = line.split(" ", 4)
    m = re.search(r"msgs_per_sec=(\d+)", rest)
    u = re.search(r"server_cpu=([0-9.]+)", rest)
    load = f"{conns} x {int(size):>7} B x {inflight}"
    if load not in order:
        order.append(load)
    rate = int(m.group(1)) if m and "errors=0" in rest else 0
    runs[(load, server)].append(rate)
    if rate and u:
        # CPU microseconds per message: the share of a CPU used, over messages per second.
        cpu[(load, server)].append(float(u.group(1)) * 1e6 / rate)
servers = []
for (_, server) in runs:
    if server not in servers:
        servers.append(server)
print()
print("median messages/s (ratio to wsengine-tokio; > 1 means faster than wsengine-tokio)")
print(f"{'load (conns x size x in flight)':<32}" + "".join(f"{s:>26}" for s in servers))
for load in order:
    base = statistics.median(runs[(load, "wsengine-tokio")]) or 1
    cells = []
    for s in servers:
        med = statistics.median(runs[(load, s)])
        cells.append(f"{med:>14.0f} ({med / base:5.2f}x)")
    print(f"{load:<32}" + "".join(f"{c:>26}" for c in cells))
print()
print("median server CPU microseconds per message (ratio to wsengine-tokio; > 1 means it costs more than wsengine-tokio)")
print(f"{'load (conns x size x in flight)':<32}" + "".join(f"{s:>26}" for s in servers))
for load in order:
    base = statistics.median(cpu[(load, "wsengine-tokio")] or [0]) or 1
    cells = []
    for s in servers:
        values = cpu[(load, s)]
        if not values:
            cells.append("-")
            continue
        med = statistics.median(values)
        cells.append(f"{med:>14.2f} ({med / base:5.2f}x)")
    print(f"{load:<32}" + "".join(f"{c:>26}" for c in cells))
PY
