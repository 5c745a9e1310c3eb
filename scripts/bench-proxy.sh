#!/usr/bin/env bash
# Echo through `wsengine proxy` vs the echo server directly, with benches' load generator.
#
#   scripts/bench-proxy.sh [SECONDS]
#
# Starts wsengine-tokio's tokio_echo_server (single-threaded) and the proxy (one worker thread) in
# front of it, then for each load runs loadgen against the echo server, then through the proxy.
# Prints messages/s, p50/p99 round trip, and CPU per message of each process (from
# /proc/PID/stat), so the proxy's own cost per relayed message shows beside the server's.
# Ports: $BENCH_PORT (echo, default 9041) and BENCH_PORT+1 (proxy).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
seconds="${1:-5}"
port="${BENCH_PORT:-9041}"
pport=$((port + 1))
cargo build --release -p wsengine-benches --bin loadgen >&2
cargo build --release -p wsengine-tokio --example tokio_echo_server >&2
# PROXY_EXAMPLE=1 runs the library's proxy_from_file example instead of the wsengine binary (the
# same relay, without the binary's signal handling).
if [ -n "${PROXY_EXAMPLE:-}" ]; then
  cargo build --release -p wsengine-proxy --example proxy_from_file >&2
else
  cargo build --release -p wsengine-cli >&2
fi
bin="$root/target/release"
dir="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
cat >"$dir/proxy.toml" <<TOML
listen = "127.0.0.1:$pport"
[[routes]]
path = "/"
upstream = "echo"
[[upstreams]]
name = "echo"
url = "ws://127.0.0.1:$port"
[health_check]
interval = "0s"
TOML
"$bin/examples/tokio_echo_server" "127.0.0.1:$port" >/dev/null &
echo_pid=$!; pids+=($echo_pid)
if [ -n "${PROXY_EXAMPLE:-}" ]; then
  "$bin/examples/proxy_from_file" "$dir/proxy.toml" 1 >/dev/null &
else
  "$bin/wsengine" --log warn proxy --threads 1 --config "$dir/proxy.toml" &
fi
proxy_pid=$!; pids+=($proxy_pid)
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() {
  local label="$1" target="$2" conns="$3" size="$4" inflight="$5"
  local e0 p0 e1 p1 out rate
  e0=$(ticks "$echo_pid"); p0=$(ticks "$proxy_pid")
  out="$(timeout $((seconds + 30)) "$bin/loadgen" --url "ws://127.0.0.1:$target/" --connections "$conns" \
    --size "$size" --in-flight "$inflight" --duration "$seconds" --warmup 1 | grep '^RESULT' || true)"
  e1=$(ticks "$echo_pid"); p1=$(ticks "$proxy_pid")
  rate="$(echo "$out" | grep -o 'msgs_per_sec=[0-9.]*' | cut -d= -f2)"
  # CPU per message: the process's ticks over the messages of warm-up plus run (loadgen counts
  # only the run, so its rate stands for both).
  awk -v l="$label" -v o="$out" -v r="${rate:-0}" -v s="$seconds" -v hz="$hz" \
    -v e=$((e1 - e0)) -v p=$((p1 - p0)) 'BEGIN {
      n = r * (s + 1); if (n < 1) n = 1
      printf "%-8s %s echo_cpu_us_per_msg=%.2f proxy_cpu_us_per_msg=%.2f\n", l, o, e / hz / n * 1e6, p / hz / n * 1e6
    }'
}
for load in "100 20 1" "100 1024 16" "200 16384 1"; do
  # shellcheck disable=SC2086
  set -- $load
  run direct "$port" "$1" "$2" "$3"
  run proxied "$pport" "$1" "$2" "$3"
done
