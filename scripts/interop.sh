#!/usr/bin/env bash
# Interoperability with other WebSocket implementations, both directions, compression on.
#
#   scripts/interop.sh
#
# Every one of OUR servers (SERVERS below) is checked by every peer client, and every one of
# OUR clients (CLIENTS below) against every peer server:
#   - Python `websockets` (PyPI, installed into a private virtualenv on first use): client and
#     server (interop/websockets_client.py, interop/websockets_server.py);
#   - Node `ws` (npm, installed into interop/node_modules from interop/package.json): client and
#     server (interop/ws_client.mjs, interop/ws_server.mjs);
#   - headless Chromium (Debian `chromium`, apt-get installed when missing) driven by
#     playwright-core (npm), as a client only (interop/browser_client.mjs).
# Each check requires permessage-deflate to be negotiated and text and binary messages from
# 1 B to 1 MiB to come back intact. A peer that cannot be installed is an error, never a skip.
# Prints one line per pair and exits non-zero if any pair failed.
#
# OUR endpoints, as LABEL:COMMAND (the command is split on spaces, so it may carry arguments):
#   server: `COMMAND ADDR` serves echo on ADDR (127.0.0.1:PORT), permessage-deflate enabled;
#   client: `COMMAND URL --require-deflate` sends text+binary 1 B..1 MiB, checks the echoes,
#           exits non-zero on failure.
# INTEROP_SERVERS / INTEROP_CLIENTS (newline-separated LABEL:COMMAND entries) replace the lists.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
bins="$root/target/release/examples"

SERVERS=(
  "core-blocking:$bins/blocking_echo"
  "tokio:$bins/tokio_echo_server"
  "smol:$bins/smol_echo_server"
)
CLIENTS=(
  "core-blocking:$bins/echo_check"
  "tokio:$bins/tokio_echo_client --check"
  "smol:$bins/smol_echo_client --check"
)
# What to build first: PACKAGE EXAMPLE.
BUILDS=(
  "wsengine blocking_echo"
  "wsengine echo_check"
  "wsengine-tokio tokio_echo_server"
  "wsengine-tokio tokio_echo_client"
  "wsengine-smol smol_echo_server"
  "wsengine-smol smol_echo_client"
)

if [ -n "${INTEROP_SERVERS:-}" ]; then mapfile -t SERVERS <<<"$INTEROP_SERVERS"; fi
if [ -n "${INTEROP_CLIENTS:-}" ]; then mapfile -t CLIENTS <<<"$INTEROP_CLIENTS"; fi

venv="${INTEROP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wsengine/interop-venv}"
python="${PYTHON3:-python3}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
port="${INTEROP_PORT:-9101}"  # the first server listens here, each next one on the next port
limit="${INTEROP_TIMEOUT:-120}"  # seconds per check
started=$SECONDS
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

die() { echo "interop: FAILED: $*" >&2; exit 1; }

# --- peers -------------------------------------------------------------------------------------

# Python websockets.
if ! "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
  echo "interop: installing websockets into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv" || die "cannot create a virtualenv with $python"
  "$venv/bin/pip" install --quiet --disable-pip-version-check websockets || die "cannot install websockets from PyPI"
fi
"$venv/bin/python" -c 'import websockets; print("interop: python websockets", websockets.__version__)'

# Node ws and playwright-core, pinned in interop/package.json; reinstalled when the manifest or
# the lock file changed since the last install.
command -v node >/dev/null || die "node not found (install Node.js 18 or later)"
command -v npm >/dev/null || die "npm not found"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1  # never a downloaded browser: the system Chromium only
stamp="$root/interop/node_modules/.wsengine-stamp"
manifest_hash() { cat "$root/interop/package.json" "$root/interop/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1; }
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(manifest_hash)" ]; then
  echo "interop: npm install in interop/"
  (cd "$root/interop" && timeout 600 npm install --no-audit --no-fund) || die "npm install failed"
  manifest_hash >"$stamp"
fi
(cd "$root/interop" && node -e '
  const v = (p) => require(p + "/package.json").version;
  console.log(`interop: node ${process.versions.node}, ws ${v("ws")}, playwright-core ${v("playwright-core")}`);
') || die "interop/node_modules is incomplete; remove it and retry"

# Chromium (Debian package).
if [ ! -x "$chromium" ]; then
  [ "$chromium" = /usr/bin/chromium ] || die "CHROMIUM=$chromium is not executable"
  command -v apt-get >/dev/null || die "$chromium missing and no apt-get to install it"
  echo "interop: installing chromium (apt-get)"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } >"$work/apt.log" 2>&1 || {
    tail -n 20 "$work/apt.log" >&2
    die "apt-get install chromium failed"
  }
fi
echo "interop: $("$chromium" --version 2>/dev/null)"
export CHROMIUM="$chromium"

# --- ours --------------------------------------------------------------------------------------

for build in "${BUILDS[@]}"; do
  read -r package example <<<"$build"
  cargo build --release -p "$package" --example "$example" || die "cargo build -p $package --example $example failed"
done

# --- running the pairs -------------------------------------------------------------------------

wait_port() {  # PORT PID LOG
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then cat "$3" >&2; echo "interop: the server exited" >&2; return 1; fi
    sleep 0.1
  done
  echo "interop: nothing listening on port $1" >&2
  return 1
}

# start_server LOG COMMAND... : starts a server that listens on $port, sets server_pid and url.
start_server() {
  local log="$1"
  shift
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "interop: port $port is already in use (set INTEROP_PORT)" >&2
    return 1
  fi
  "$@" >"$log" 2>&1 &
  server_pid=$!
  url="ws://127.0.0.1:$port/"
  wait_port "$port" "$server_pid" "$log"
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  port=$((port + 1))
}

failed=()
passed=0
# check "CLIENT -> SERVER" SERVER_LOG COMMAND...
check() {
  local pair="$1" server_log="$2" t0=$SECONDS log="$work/check.log" rc=0
  shift 2
  printf 'interop: %s ... ' "$pair"
  timeout "$limit" "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ] && kill -0 "$server_pid" 2>/dev/null; then
    echo "ok ($((SECONDS - t0)) s)"
    passed=$((passed + 1))
    return 0
  fi
  if [ "$rc" -eq 0 ]; then echo "FAILED (the server died)"; else echo "FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ", timed out after $limit s"))"; fi
  sed 's/^/    client: /' "$log"
  sed 's/^/    server: /' "$server_log"
  failed+=("$pair")
}

split() {  # LABEL:COMMAND -> label, cmd (array)
  label="${1%%:*}"
  read -ra cmd <<<"${1#*:}"
  [ -n "$label" ] && [ "${#cmd[@]}" -gt 0 ] || die "bad endpoint entry '$1' (want LABEL:COMMAND)"
}

# Peer clients against each of our servers.
for entry in "${SERVERS[@]}"; do
  [ -n "$entry" ] || continue
  split "$entry"
  [ -x "${cmd[0]}" ] || die "$label: ${cmd[0]} is not an executable"
  slog="$work/server.log"
  start_server "$slog" "${cmd[@]}" "127.0.0.1:$port" || die "$label server did not start"
  check "python websockets client -> $label" "$slog" "$venv/bin/python" "$root/interop/websockets_client.py" "$url"
  check "node ws client -> $label" "$slog" node "$root/interop/ws_client.mjs" "$url"
  check "chromium (playwright) client -> $label" "$slog" node "$root/interop/browser_client.mjs" "$url"
  stop_server
done

# Each of our clients against peer servers.
peer_servers=(
  "python websockets server:$venv/bin/python $root/interop/websockets_server.py"
  "node ws server:node $root/interop/ws_server.mjs"
)
for peer in "${peer_servers[@]}"; do
  peer_label="${peer%%:*}"
  read -ra peer_cmd <<<"${peer#*:}"
  slog="$work/peer-server.log"
  start_server "$slog" "${peer_cmd[@]}" "$port" || die "$peer_label did not start"
  for entry in "${CLIENTS[@]}"; do
    [ -n "$entry" ] || continue
    split "$entry"
    [ -x "${cmd[0]}" ] || die "$label: ${cmd[0]} is not an executable"
    check "$label client -> $peer_label" "$slog" "${cmd[@]}" "$url" --require-deflate
  done
  stop_server
done

echo "interop: $passed passed, ${#failed[@]} failed, $((SECONDS - started)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'interop: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "interop: all passed"
