#!/usr/bin/env bash
# User-space instructions per echoed message, per server, under callgrind: each server runs twice
# under the same load (a short and a long run, fresh process each time), and the difference in
# instructions divided by the difference in messages echoed leaves out start-up, handshakes and
# shut-down. Noise-free, unlike timings on a shared machine.
#
#   scripts/callgrind-echo.sh [SHORT_S] [LONG_S]          (defaults 5 and 10)
#   CALLGRIND_SERVERS="wsengine-tokio fastwebsockets" CALLGRIND_LOAD="100 20 1" scripts/callgrind-echo.sh
#
# Servers as in scripts/bench-echo.sh (benches/src/bin/bench_echo.rs; wsengine-uring is the core's
# io_uring example). Prints one line per server: instructions and malloc calls per message. The
# function profile of each long run is left in target/callgrind/SERVER.out for callgrind_annotate.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
short="${1:-5}"
long="${2:-10}"
read -r -a servers <<<"${CALLGRIND_SERVERS:-wsengine-tokio wsengine-smol fastwebsockets tokio-websockets raw-tokio}"
read -r conns size inflight <<<"${CALLGRIND_LOAD:-100 20 1}"
port="${BENCH_PORT:-9410}"
command -v valgrind >/dev/null || { echo "callgrind-echo: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

cargo build --release -p wsengine-benches --bin bench_echo --bin loadgen
case " ${servers[*]} " in *" wsengine-uring "*) cargo build --release -p wsengine --example uring_echo ;; esac
bin="$root/target/release"
out="$root/target/callgrind"
mkdir -p "$out"
server_pid=""
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true' EXIT

# run SERVER SECONDS -> "instructions mallocs messages"
run() {
  local server="$1" seconds="$2" file="$out/$1.$2.out" cmd
  if [ "$server" = wsengine-uring ]; then
    cmd=("$bin/examples/uring_echo" "127.0.0.1:$port")
  else
    cmd=("$bin/bench_echo" "$server" "127.0.0.1:$port")
  fi
  valgrind --tool=callgrind --callgrind-out-file="$file" "${cmd[@]}" >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  local line
  line="$(timeout $((seconds + 120)) "$bin/loadgen" --url "ws://127.0.0.1:$port/" --connections "$conns" \
    --size "$size" --in-flight "$inflight" --duration "$seconds" --warmup 0 || true)"
  sleep 1
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  port=$((port + 1))
  local messages instructions mallocs
  messages="$(sed -n 's/.* messages=\([0-9]*\).*/\1/p' <<<"$line")"
  [ -n "$messages" ] || { echo "callgrind-echo: $server: no result ($line)" >&2; exit 1; }
  instructions="$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file")"
  # Calls to malloc: the sum of the call counts of every call site whose callee is malloc.
  mallocs="$(python3 - "$file" <<'PY'
import re, sys
names, callee, total = {}, None, 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line.strip())
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3)
        if m.group(1) == "cfn":
            callee = names.get(m.group(2))
    elif line.startswith("calls=") and callee == "malloc":
        total += int(line[6:].split()[0])
print(total)
PY
)"
  echo "${instructions:-0} ${mallocs:-0} $messages"
}

printf '%-18s %14s %16s %10s\n' server instr/msg "mallocs/msg" messages
for server in "${servers[@]}"; do
  read -r i1 m1 n1 <<<"$(run "$server" "$short")"
  read -r i2 m2 n2 <<<"$(run "$server" "$long")"
  cp "$out/$server.$long.out" "$out/$server.out"
  python3 -c "
import sys
i1, m1, n1, i2, m2, n2 = map(int, sys.argv[2:])
d = max(n2 - n1, 1)
print(f'{sys.argv[1]:<18} {(i2 - i1) / d:14.0f} {(m2 - m1) / d:16.2f} {n2 - n1:10d}')
" "$server" "$i1" "$m1" "$n1" "$i2" "$m2" "$n2"
done
