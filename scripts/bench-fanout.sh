#!/usr/bin/env bash
# Hub fan-out: one publish to N subscribers (raw-socket subscribers), for each N given
# (default 1000 and 10000), wsengine-hub (native protocol, one server thread) side by side with
# soketi 1.6.1 (Pusher protocol, published through its HTTP API). Prints p50/p99 delivery
# latency, the server's CPU microseconds per delivery and its resident memory per subscriber.
# soketi is installed on first use into ~/.cache/wsengine/soketi (npm, with uWebSockets.js
# mapped to @trufflesuite/uws-js-unofficial, which loads on this glibc); a failed install fails.
#
#   scripts/bench-fanout.sh [N...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000 10000)
port="${BENCH_PORT:-9450}"
rounds="${BENCH_ROUNDS:-20}"
cargo build --release -p wsengine-benches --bin fanout
bin="$root/target/release/fanout"
soketi_dir="${XDG_CACHE_HOME:-$HOME/.cache}/wsengine/soketi"
if [ ! -x "$soketi_dir/node_modules/.bin/soketi" ]; then
  mkdir -p "$soketi_dir"
  cat >"$soketi_dir/package.json" <<'JSON'
{
  "name": "soketi-bench",
  "private": true,
  "dependencies": { "@soketi/soketi": "1.6.1" },
  "overrides": { "uWebSockets.js": "npm:@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0" }
}
JSON
  (cd "$soketi_dir" && npm install --ignore-scripts --no-audit --no-fund) || { echo "bench-fanout: cannot install soketi" >&2; exit 1; }
fi
ulimit -n "$(ulimit -Hn)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
for count in "${counts[@]}"; do
  "$bin" server "127.0.0.1:$port" >/dev/null 2>&1 &
  spid=$!
  pids+=("$spid")
  wait_port "$port"
  sleep 0.5
  echo "== wsengine-hub (native), $count subscribers"
  timeout 300 "$bin" client --url "ws://127.0.0.1:$port/" --subscribers "$count" --rounds "$rounds" --server-pid "$spid"
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  port=$((port + 1))

  (cd "$soketi_dir" && exec env SOKETI_PORT="$port" SOKETI_METRICS_ENABLED=false node node_modules/@soketi/soketi/bin/server.js start) >/dev/null 2>&1 &
  spid=$!
  pids+=("$spid")
  wait_port "$port"
  sleep 1
  echo "== soketi 1.6.1 (Pusher), $count subscribers"
  timeout 300 "$bin" client --url "ws://127.0.0.1:$port/app/app-key?protocol=7&client=js&version=8.0.0" \
    --protocol pusher --subscribers "$count" --rounds "$rounds" --server-pid "$spid"
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  port=$((port + 1))
done
