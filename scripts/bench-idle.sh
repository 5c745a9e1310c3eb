#!/usr/bin/env bash
# Idle memory per connection: opens N WebSocket connections to each server (from several
# 127.0.0.x source addresses), holds them, and reports the growth of the server's resident
# memory divided by N.
#
#   scripts/bench-idle.sh [N]        (default 10000)
#   BENCH_SERVERS="wsengine-tokio wsengine-smol" scripts/bench-idle.sh    (a subset of servers)
#
# Servers as in scripts/bench-echo.sh; `uws` (uWebSockets.js, installed by
# ../shared/peers/uws/setup.sh) runs when named in BENCH_SERVERS.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
count="${1:-10000}"
read -r -a servers <<<"${BENCH_SERVERS:-wsengine-tokio wsengine-smol tokio-tungstenite fastwebsockets tokio-websockets}"
port="${BENCH_PORT:-9350}"
cargo build --release -p wsengine-benches --bin bench_echo --bin loadgen
uws=""
case " ${servers[*]} " in *" uws "*) uws="$("$root/../shared/peers/uws/setup.sh" | tail -n 1)" ;; esac
bin="$root/target/release"
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((count + 200)) ]; then
  echo "bench-idle: $count connections need $((count + 200)) file descriptors per process; the limit is $(ulimit -n)" >&2
  exit 1
fi
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

printf '%-20s %12s %12s %14s\n' server "rss idle KiB" "rss +N KiB" "bytes/conn"
for server in "${servers[@]}"; do
  if [ "$server" = uws ]; then
    # shellcheck disable=SC2086 # the setup script's command line, split into words
    $uws "127.0.0.1:$port" >/dev/null 2>&1 &
  else
    "$bin/bench_echo" "$server" "127.0.0.1:$port" >/dev/null 2>&1 &
  fi
  spid=$!
  pids+=("$spid")
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  before="$(rss_kib "$spid")"
  out="$(mktemp)"
  timeout 200 "$bin/loadgen" --url "ws://127.0.0.1:$port/" --idle "$count" --hold 20 --sources 8 >"$out" 2>&1 &
  lpid=$!
  pids+=("$lpid")
  for _ in $(seq 1 1500); do grep -q READY "$out" && break; kill -0 "$lpid" 2>/dev/null || break; sleep 0.1; done
  if ! grep -q READY "$out"; then
    echo "bench-idle: $server: connections did not open: $(cat "$out")" >&2
    exit 1
  fi
  sleep 3
  after="$(rss_kib "$spid")"
  kill "$lpid" "$spid" 2>/dev/null || true
  wait "$lpid" "$spid" 2>/dev/null || true
  rm -f "$out"
  printf '%-20s %12s %12s %14s\n' "$server" "$before" "$after" "$(( (after - before) * 1024 / count ))"
  port=$((port + 1))
done
