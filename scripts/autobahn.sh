#!/usr/bin/env bash
# Runs Autobahn|Testsuite against wsengine and checks the results against autobahn/expected/.
#
#   scripts/autobahn.sh MODE [--full | --subset | --cases PATTERNS] [--update]
#
# MODE, the testee:
#   server         core's blocking_echo example (std::net, a thread per connection); with --full
#                  also 12.*/13.* again against `blocking_echo --context-takeover`, which honours
#                  each offer's context takeover instead of imposing none
#   server-takeover  that rerun alone: 12.*/13.* (with --subset its compression cases, with
#                  --cases those) against `blocking_echo --context-takeover`
#   server-tokio   wsengine-tokio's tokio_echo_server example (single-threaded runtime)
#   server-smol    wsengine-smol's smol_echo_server example (single-threaded executor)
#   server-uring   core's uring_echo example (io_uring, one thread; Linux only); checked
#                  against server-blocking.json (same engine and config; --update is refused)
#   client         core's blocking autobahn_client example           \  as clients of the suite's
#   client-tokio   wsengine-tokio's tokio_autobahn_client example     >  fuzzing server, inside a
#   client-smol    wsengine-smol's smol_autobahn_client example      /   private network namespace
#   cli-echo       `wsengine echo --deflate` (the program's echo server, multi-threaded tokio);
#                  checked against server-tokio's expected file (same engine; --update is refused)
#   proxy          `wsengine proxy` in front of server-tokio's echo server (scripts/autobahn-
#                  proxy.sh); checked against server-tokio's expected file, since the proxy
#                  must be transparent (--update is refused)
#
# Which cases (case-id patterns as the suite matches them, e.g. 12.1.*):
#   (default)      1.* to 10.*: framing, fragmentation, control frames, UTF-8, close (seconds)
#   --subset       1.* to 10.* and 18 compression cases: 1000 messages of 16 B to 4 KiB, and
#                  of 8 KiB auto-fragmented to 256 B, under the default offer (12.1.*, 13.1.*)
#                  and under several offers with window 9 and no context takeover (13.7.*); for
#                  modes whose compression is the core's, which another mode runs in full
#   --full         all 517 (12.* and 13.* are permessage-deflate and take minutes)
#   --cases P,Q    exactly these patterns
# Installs the suite (Python 2.7 virtualenv) on first use. Prints a per-category table and exits
# non-zero on any FAILED or UNIMPLEMENTED case, or on a result that differs from the expected
# file; a run of some cases is compared with the expected results of exactly those cases.
# --update merges this run's results into the expected file instead of checking it. Server
# modes listen on $AUTOBAHN_PORT (default 9001); reports go to autobahn/reports/AGENT.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
mode="${1:-server}"
shift || true
update=""
full=""
limit=900
basic="1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*"
# The five smallest message sizes (1-5) and the first auto-fragmented one (11) of three groups.
compression_subset="$(for group in 12.1 13.1 13.7; do for n in 1 2 3 4 5 11; do printf '%s.%s,' "$group" "$n"; done; done)"
compression_subset="${compression_subset%,}"
patterns="$basic"
# What server-takeover runs: only compression cases differ with context takeover.
takeover_patterns="12.*,13.*"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --update) update="--update" ;;
    --full) full="--full"; patterns="*"; takeover_patterns="12.*,13.*"; limit=2700 ;;
    --subset) patterns="$basic,$compression_subset"; takeover_patterns="$compression_subset"; limit=1200 ;;
    --cases)
      [ "$#" -ge 2 ] || { echo "autobahn: --cases needs a comma-separated list of patterns" >&2; exit 2; }
      patterns="$2"; takeover_patterns="$2"; limit=2700; shift ;;
    *) echo "autobahn: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# Builds an example and prints the path of its binary.
build_example() {
  local package="$1" example="$2"
  cargo build --release -p "$package" --example "$example" >&2
  echo "$root/target/release/examples/$example"
}

# Comma-separated patterns as the JSON list a spec file wants.
cases_json() {
  python3 -c 'import json, sys; print(json.dumps(sys.argv[1].split(",")))' "$1"
}

server_pid=""
work=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

run_fuzzingclient() {
  local agent="$1" expected="$2" run_patterns="$3"
  shift 3
  local wstest port outdir
  wstest="$("$here/autobahn-install.sh")"
  port="${AUTOBAHN_PORT:-9001}"
  outdir="$root/autobahn/reports/$agent"
  work="$(mktemp -d)"
  echo "autobahn: starting $agent: $*"
  # The listen address goes where the command says {addr}, or else right after the program.
  local command=() placed=""
  for arg in "$@"; do
    if [ "$arg" = "{addr}" ]; then command+=("127.0.0.1:$port"); placed=1; else command+=("$arg"); fi
  done
  [ -n "$placed" ] || command=("$1" "127.0.0.1:$port" "${@:2}")
  "${command[@]}" >"$work/server.log" 2>&1 &
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
  "cases": $(cases_json "$run_patterns"),
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
  # shellcheck disable=SC2086
  python3 "$here/autobahn_report.py" "$outdir/index.json" "$agent" "$expected" --cases "$run_patterns" $update
}

run_client() {
  local agent="$1" expected_file="$2" client="$3"
  # shellcheck disable=SC2086
  bash "$here/autobahn-client.sh" "$agent" "$expected_file" --cases "$patterns" $update -- "$client"
}

expected="$root/autobahn/expected"
case "$mode" in
  server)
    echo_bin="$(build_example wsengine blocking_echo)"
    run_fuzzingclient wsengine-blocking "$expected/server-blocking.json" "$patterns" "$echo_bin"
    if [ -n "$full" ]; then
      run_fuzzingclient wsengine-blocking-takeover "$expected/server-blocking-takeover.json" \
        "12.*,13.*" "$echo_bin" --context-takeover
    fi
    ;;
  server-takeover)
    # All of 12.*/13.* takes as long as --full.
    [ "$takeover_patterns" = "$compression_subset" ] || limit=2700
    echo_bin="$(build_example wsengine blocking_echo)"
    run_fuzzingclient wsengine-blocking-takeover "$expected/server-blocking-takeover.json" \
      "$takeover_patterns" "$echo_bin" --context-takeover
    ;;
  server-tokio | server-smol)
    runtime="${mode#server-}"
    echo_bin="$(build_example "wsengine-$runtime" "${runtime}_echo_server")"
    run_fuzzingclient "wsengine-$runtime" "$expected/server-$runtime.json" "$patterns" "$echo_bin"
    ;;
  server-uring)
    if [ -n "$update" ]; then echo "autobahn: server-uring mode checks against server-blocking.json; update mode server" >&2; exit 2; fi
    echo_bin="$(build_example wsengine uring_echo)"
    run_fuzzingclient wsengine-uring "$expected/server-blocking.json" "$patterns" "$echo_bin"
    ;;
  proxy)
    if [ -n "$update" ]; then echo "autobahn: proxy mode checks against server-tokio.json; update that mode" >&2; exit 2; fi
    echo_bin="$(build_example wsengine-tokio tokio_echo_server)"
    cargo build --release -p wsengine-cli >&2
    # The echo server behind the proxy needs a port of its own: the suite's port plus 1000
    # (a lane on 9011 would otherwise put the proxy and its backend on the same port).
    export AUTOBAHN_BACKEND_PORT="${AUTOBAHN_BACKEND_PORT:-$(( ${AUTOBAHN_PORT:-9001} + 1000 ))}"
    run_fuzzingclient wsengine-proxy "$expected/server-tokio.json" "$patterns" \
      "$here/autobahn-proxy.sh" "$root/target/release/wsengine" "$echo_bin"
    ;;
  cli-echo)
    if [ -n "$update" ]; then echo "autobahn: cli-echo mode checks against server-tokio.json; update that mode" >&2; exit 2; fi
    cargo build --release -p wsengine-cli >&2
    run_fuzzingclient wsengine-cli-echo "$expected/server-tokio.json" "$patterns" \
      "$root/target/release/wsengine" --log warn echo "{addr}" --deflate
    ;;
  client)
    run_client wsengine-blocking-client "$expected/client-blocking.json" \
      "$(build_example wsengine autobahn_client)"
    ;;
  client-tokio | client-smol)
    runtime="${mode#client-}"
    run_client "wsengine-$runtime-client" "$expected/client-$runtime.json" \
      "$(build_example "wsengine-$runtime" "${runtime}_autobahn_client")"
    ;;
  *)
    echo "usage: scripts/autobahn.sh server|server-takeover|server-tokio|server-smol|server-uring|cli-echo|client|client-tokio|client-smol|proxy [--full | --subset | --cases PATTERNS] [--update]" >&2
    exit 2
    ;;
esac
