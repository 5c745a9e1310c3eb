#!/usr/bin/env bash
# Runs Autobahn|Testsuite against a WebSocket client and checks the results.
#
#   scripts/autobahn-client.sh AGENT EXPECTED_JSON [--full | --cases PATTERNS] [--update] -- CLIENT_CMD...
#
# Starts the suite's fuzzing server (`wstest -m fuzzingserver`) on ws://127.0.0.1:9001 inside a
# private network namespace that has only loopback (the fuzzing server listens on every
# interface), runs `CLIENT_CMD ws://127.0.0.1:9001 AGENT` there (the client reads
# /getCaseCount, runs /runCase?case=N&agent=AGENT for every N echoing every message, then calls
# /updateReports?agent=AGENT), stops the server, and checks autobahn/reports/AGENT/index.json
# with scripts/autobahn_report.py: a per-category table, non-zero exit on any FAILED or
# UNIMPLEMENTED case or a result that differs from EXPECTED_JSON (--update rewrites it instead).
# Cases 1.* to 10.* (900 s limit), with --full all of them (2700 s), or with --cases the
# comma-separated case-id patterns given (e.g. 1.*,12.1.*; 2700 s); only the cases run are
# compared with EXPECTED_JSON.
#
#   scripts/autobahn-client.sh wsengine-blocking-client autobahn/expected/client-blocking.json \
#     -- target/release/examples/autobahn_client
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
usage="usage: scripts/autobahn-client.sh AGENT EXPECTED_JSON [--full | --cases PATTERNS] [--update] -- CLIENT_CMD..."
[ "$#" -ge 2 ] || { echo "$usage" >&2; exit 2; }
agent="$1"
expected="$2"
shift 2
update=""
limit=900
patterns="1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --update) update="--update" ;;
    --full) patterns="*"; limit=2700 ;;
    --cases)
      [ "$#" -ge 2 ] || { echo "autobahn-client: --cases needs a list of patterns" >&2; exit 2; }
      patterns="$2"; shift
      [ "$patterns" = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*" ] || limit=2700 ;;
    --) shift; break ;;
    *) echo "autobahn-client: unknown option $1" >&2; echo "$usage" >&2; exit 2 ;;
  esac
  shift
done
[ "$#" -gt 0 ] || { echo "autobahn-client: no client command after --" >&2; echo "$usage" >&2; exit 2; }
client=("$@")
command -v "${client[0]}" >/dev/null || { echo "autobahn-client: ${client[0]} not found (build it first)" >&2; exit 1; }
# The client runs in a scratch directory: a relative path to it must become absolute.
case "${client[0]}" in
  /*) ;;
  */*) client[0]="$(realpath "${client[0]}")" ;;
esac

# The namespace needs unshare (util-linux) and ip (iproute2), and the right to create one.
missing=()
command -v unshare >/dev/null || missing+=(util-linux)
command -v ip >/dev/null || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "autobahn-client: install ${missing[*]} (unshare, ip)" >&2; exit 1; }
  echo "autobahn-client: installing ${missing[*]} (apt-get)" >&2
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; } >&2 || {
    echo "autobahn-client: apt-get install ${missing[*]} failed" >&2
    exit 1
  }
fi
unshare -n sh -c 'ip link set lo up' || {
  echo "autobahn-client: cannot create a network namespace (unshare -n needs root or CAP_SYS_ADMIN)" >&2
  exit 1
}

wstest="$("$here/autobahn-install.sh")"
port=9001
outdir="$root/autobahn/reports/$agent"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$outdir"
# A report left from an earlier run must not pass for this one.
rm -f "$outdir/index.json"
cat >"$work/spec.json" <<JSON
{
  "url": "ws://127.0.0.1:$port",
  "outdir": "$outdir",
  "cases": $(python3 -c 'import json, sys; print(json.dumps(sys.argv[1].split(",")))' "$patterns"),
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON

# Inside the namespace: lo up, the fuzzing server in the background (it never exits by itself,
# so it is bounded too, and killed on the way out), wait for its port, then the client, bounded.
inner='
set -u
wstest="$1" work="$2" port="$3" limit="$4" agent="$5"
shift 5
ip link set lo up || exit 1
cd "$work" || exit 1
timeout "$((limit + 60))" "$wstest" -m fuzzingserver -s "$work/spec.json" --webport 0 >"$work/wstest.log" 2>&1 &
server=$!
trap '"'"'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null'"'"' EXIT
trap '"'"'exit 143'"'"' TERM INT
up=""
for _ in $(seq 1 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$up" ]; then
  tail -n 30 "$work/wstest.log" | cut -c1-300 >&2
  echo "autobahn-client: the fuzzing server did not start" >&2
  exit 1
fi
echo "autobahn-client: running $agent: $* ws://127.0.0.1:$port $agent" >&2
rc=0
timeout "$limit" "$@" "ws://127.0.0.1:$port" "$agent" || rc=$?
if [ "$rc" -eq 124 ]; then echo "autobahn-client: the client timed out after $limit s" >&2; fi
exit "$rc"
'
started=$SECONDS
rc=0
timeout "$((limit + 120))" unshare -n bash -c "$inner" autobahn-client \
  "$wstest" "$work" "$port" "$limit" "$agent" "${client[@]}" >"$work/client.log" 2>&1 || rc=$?
echo "autobahn-client: client and suite took $((SECONDS - started)) s"
if [ "$rc" -ne 0 ]; then
  tail -n 30 "$work/client.log" | cut -c1-300 >&2
  tail -n 30 "$work/wstest.log" 2>/dev/null | cut -c1-300 >&2 || true
  echo "autobahn-client: the client run failed (exit $rc)" >&2
  exit 1
fi
[ -f "$outdir/index.json" ] || {
  tail -n 30 "$work/client.log" | cut -c1-300 >&2
  echo "autobahn-client: no $outdir/index.json: the client never called /updateReports" >&2
  exit 1
}
# shellcheck disable=SC2086
python3 "$here/autobahn_report.py" "$outdir/index.json" "$agent" "$expected" --cases "$patterns" $update
