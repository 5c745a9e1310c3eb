#!/usr/bin/env bash
# Runs Autobahn|Testsuite against wsengine and checks the results against autobahn/expected/.
#
#   scripts/autobahn.sh MODE [--full] [--update]
#
# MODE, the testee:
#   server         core's blocking_echo example (std::net, a thread per connection); with --full
#                  also 12.*/13.* again against `blocking_echo --context-takeover`, which honours
#                  each offer's context takeover instead of imposing none
#   server-tokio   wsengine-tokio's echo_server example (single-threaded runtime)
#   server-smol    wsengine-smol's echo_server example (single-threaded executor)
#   client         core's blocking autobahn_client example     \  as clients of the suite's
#   client-tokio   wsengine-tokio's autobahn_client example     >  fuzzing server, inside a
#   client-smol    wsengine-smol's autobahn_client example     /   private network namespace
#
# Cases 1.* to 10.*, or with --full all 517 (12.* and 13.* are permessage-deflate and take
# minutes). Installs the suite (Python 2.7 virtualenv) on first use. Prints a per-category table
# and exits non-zero on any FAILED or UNIMPLEMENTED case, or on a result that differs from the
# expected file. --update rewrites the expected file instead of checking it. Server modes
# listen on $AUTOBAHN_PORT (default 9001); reports go to autobahn/reports/AGENT.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
mode="${1:-server}"
shift || true
update=""
full=""
limit=900
cases='["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*"]'
for arg in "$@"; do
  case "$arg" in
    --update) update="--update" ;;
    --full) full="--full"; cases='["*"]'; limit=2700 ;;
    *) echo "autobahn: unknown option $arg" >&2; exit 2 ;;
  esac
done

# Examples of the two runtime crates share names, so each is copied out under its own name.
bins="$root/target/autobahn-bin"
build_example() {
  local package="$1" example="$2" name="$3"
  cargo build --release -p "$package" --example "$example" >&2
  mkdir -p "$bins"
  cp -f "$root/target/release/examples/$example" "$bins/$name"
  echo "$bins/$name"
}

server_pid=""
work=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

run_fuzzingclient() {
  local agent="$1" expected="$2" run_cases="$3"
  shift 3
  local wstest port outdir
  wstest="$("$here/autobahn-install.sh")"
  port="${AUTOBAHN_PORT:-9001}"
  outdir="$root/autobahn/reports/$agent"
  work="$(mktemp -d)"
  echo "autobahn: starting $agent: $*"
  "$1" "127.0.0.1:$port" "${@:2}" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/server.log" >&2; echo "autobahn: $agent exited" >&2; exit 1; fi
    sleep 0.1
  done
  rm -rf "$outdir"
  mkdir -p "$outdir"
  cat >"$work/spec.json" <<JSON
{
  "outdir": "$outdir",
  "servers": [{"agent": "$agent", "url": "ws://127.0.0.1:$port"}],
  "cases": $run_cases,
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
  local started=$SECONDS
  (cd "$work" && timeout "$limit" "$wstest" -m fuzzingclient -s "$work/spec.json" >"$work/wstest.log" 2>&1) || {
    tail -n 30 "$work/wstest.log" >&2
    echo "autobahn: wstest failed or timed out" >&2
    exit 1
  }
  echo "autobahn: $agent took $((SECONDS - started)) s"
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  rm -rf "$work"
  work=""
  python3 "$here/autobahn_report.py" "$outdir/index.json" "$agent" "$expected" $update
}

run_client() {
  local agent="$1" expected_file="$2" client="$3"
  # shellcheck disable=SC2086
  bash "$here/autobahn-client.sh" "$agent" "$expected_file" $full $update -- "$client"
}

expected="$root/autobahn/expected"
case "$mode" in
  server)
    echo_bin="$(build_example wsengine blocking_echo blocking_echo)"
    run_fuzzingclient wsengine-blocking "$expected/server-blocking.json" "$cases" "$echo_bin"
    if [ -n "$full" ]; then
      run_fuzzingclient wsengine-blocking-takeover "$expected/server-blocking-takeover.json" \
        '["12.*", "13.*"]' "$echo_bin" --context-takeover
    fi
    ;;
  server-tokio | server-smol)
    runtime="${mode#server-}"
    echo_bin="$(build_example "wsengine-$runtime" echo_server "echo_server-$runtime")"
    run_fuzzingclient "wsengine-$runtime" "$expected/server-$runtime.json" "$cases" "$echo_bin"
    ;;
  client)
    run_client wsengine-blocking-client "$expected/client-blocking.json" \
      "$(build_example wsengine autobahn_client autobahn_client-blocking)"
    ;;
  client-tokio | client-smol)
    runtime="${mode#client-}"
    run_client "wsengine-$runtime-client" "$expected/client-$runtime.json" \
      "$(build_example "wsengine-$runtime" autobahn_client "autobahn_client-$runtime")"
    ;;
  *)
    echo "usage: scripts/autobahn.sh server|server-tokio|server-smol|client|client-tokio|client-smol [--full] [--update]" >&2
    exit 2
    ;;
esac
