#!/usr/bin/env bash
# Runs Autobahn|Testsuite against wsengine and checks the results against autobahn/expected/.
#
#   scripts/autobahn.sh server [--full] [--update]
#       fuzzingclient against the blocking_echo example of the core crate: cases 1.* to 10.*,
#       or with --full all 517 cases (12.* and 13.* are permessage-deflate, and take minutes),
#       then 12.* and 13.* again against blocking_echo --context-takeover, which honours each
#       offer's context takeover instead of imposing none
#
# Installs the suite (Python 2.7 virtualenv) on first use. Prints a per-category table and exits
# non-zero on any FAILED or UNIMPLEMENTED case, or on a result that differs from the expected
# file. --update rewrites the expected file instead of checking it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
mode="${1:-server}"
shift || true
update=""
limit=900
cases='["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*"]'
for arg in "$@"; do
  case "$arg" in
    --update) update="--update" ;;
    --full) cases='["*"]'; limit=2700 ;;
    *) echo "autobahn: unknown option $arg" >&2; exit 2 ;;
  esac
done

wstest="$("$here/autobahn-install.sh")"
port="${AUTOBAHN_PORT:-9001}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

run_fuzzingclient() {
  local agent="$1" expected="$2" run_cases="$3"
  shift 3
  echo "autobahn: starting $agent: $*"
  "$1" "127.0.0.1:$port" "${@:2}" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then cat "$work/server.log" >&2; echo "autobahn: $agent exited" >&2; exit 1; fi
    sleep 0.1
  done
  mkdir -p "$root/autobahn/reports"
  cat >"$work/spec.json" <<JSON
{
  "outdir": "$root/autobahn/reports/server",
  "servers": [{"agent": "$agent", "url": "ws://127.0.0.1:$port"}],
  "cases": $run_cases,
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
  (cd "$work" && timeout "$limit" "$wstest" -m fuzzingclient -s "$work/spec.json" >"$work/wstest.log" 2>&1) || {
    tail -n 30 "$work/wstest.log" >&2
    echo "autobahn: wstest failed or timed out" >&2
    exit 1
  }
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  python3 "$here/autobahn_report.py" "$root/autobahn/reports/server/index.json" "$agent" "$expected" $update
}

case "$mode" in
  server)
    cargo build --release -p wsengine --example blocking_echo
    run_fuzzingclient wsengine-blocking "$root/autobahn/expected/server-blocking.json" "$cases" \
      "$root/target/release/examples/blocking_echo"
    if [ "$cases" = '["*"]' ]; then
      run_fuzzingclient wsengine-blocking-takeover "$root/autobahn/expected/server-blocking-takeover.json" \
        '["12.*", "13.*"]' "$root/target/release/examples/blocking_echo" --context-takeover
    fi
    ;;
  *)
    echo "usage: scripts/autobahn.sh server [--full] [--update]" >&2
    exit 2
    ;;
esac
