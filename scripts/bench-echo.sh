#!/usr/bin/env bash
# End-to-end echo benchmark: every server under the same loads, one thread each, alternating
# servers round by round, then a table of medians and ratios to wsengine-tokio.
#
#   scripts/bench-echo.sh [ROUNDS] [SECONDS]        (defaults: 3 rounds of 5 s after 1 s warm-up)
#   BENCH_SERVERS="wsengine-tokio fastwebsockets" scripts/bench-echo.sh    (a subset; keep wsengine-tokio,
#   the ratios' base)
#
# Servers (benches/src/bin/bench_echo.rs, built from crates.io): wsengine-tokio, wsengine-smol,
# tokio-tungstenite, fastwebsockets, tokio-websockets. Load generator: benches/src/bin/loadgen.rs
# (raw TCP, pre-built masked frames). wsengine-uring (core's uring_echo example, io_uring, Linux
# only) runs when named in BENCH_SERVERS. Loads: connections x message size [x messages in flight].
# Server and load generator share this machine: compare ratios, not absolute numbers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
rounds="${1:-3}"
seconds="${2:-5}"
read -r -a servers <<<"${BENCH_SERVERS:-wsengine-tokio wsengine-smol tokio-tungstenite fastwebsockets tokio-websockets}"
# connections size in_flight
loads=("100 20 1" "100 1024 16" "200 16384 1" "500 16384 1" "10 1048576 1")
port="${BENCH_PORT:-9310}"

cargo build --release -p wsengine-benches --bin bench_echo --bin loadgen
case " ${servers[*]} " in *" wsengine-uring "*) cargo build --release -p wsengine --example uring_echo ;; esac
bin="$root/target/release"
ulimit -n 65536 2>/dev/null || true
results="$(mktemp)"
server_pid=""
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -f "$results"' EXIT

for load in "${loads[@]}"; do
  read -r conns size inflight <<<"$load"
  for round in $(seq 1 "$rounds"); do
    for server in "${servers[@]}"; do
      if [ "$server" = wsengine-uring ]; then
        "$bin/examples/uring_echo" "127.0.0.1:$port" >/dev/null 2>&1 &
      else
        "$bin/bench_echo" "$server" "127.0.0.1:$port" >/dev/null 2>&1 &
      fi
      server_pid=$!
      for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
      line="$(timeout $((seconds + 60)) "$bin/loadgen" --url "ws://127.0.0.1:$port/" --connections "$conns" \
        --size "$size" --in-flight "$inflight" --duration "$seconds" --warmup 1 || true)"
      kill "$server_pid" 2>/dev/null || true
      wait "$server_pid" 2>/dev/null || true
      server_pid=""
      echo "$server $conns $size $inflight ${line:-RESULT failed}" | tee -a "$results"
      port=$((port + 1))
    done
  done
done

python3 - "$results" <<'PY'
import re, statistics, sys
from collections import defaultdict
runs = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    server, conns, size, inflight, rest = line.split(" ", 4)
    m = re.search(r"msgs_per_sec=(\d+)", rest)
    load = f"{conns} x {int(size):>7} B x {inflight}"
    if load not in order:
        order.append(load)
    runs[(load, server)].append(int(m.group(1)) if m and "errors=0" in rest else 0)
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
PY
