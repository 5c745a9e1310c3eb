#!/usr/bin/env bash
# Interoperability with other WebSocket implementations, both directions, compression on.
#
#   scripts/interop.sh
#
# Python `websockets` (PyPI, installed into a private virtualenv on first use):
#   - its client against our blocking_echo server;
#   - our echo_check client against its server.
# Each side checks that permessage-deflate was negotiated and that text and binary messages
# from 1 B to 1 MiB come back intact. Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="${INTEROP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wsengine/interop-venv}"
python="${PYTHON3:-python3}"

if ! "$venv/bin/python" -c 'import websockets' 2>/dev/null; then
  echo "interop: installing websockets into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check websockets
fi
"$venv/bin/python" -c 'import websockets; print("interop: python websockets", websockets.__version__)'

cargo build --release -p wsengine --example blocking_echo --example echo_check
bin="$root/target/release/examples"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "interop: nothing listening on port $1" >&2
  return 1
}

echo "interop: python websockets client -> wsengine blocking_echo"
"$bin/blocking_echo" 127.0.0.1:9101 >/dev/null 2>&1 &
pids+=($!)
wait_port 9101
timeout 120 "$venv/bin/python" "$root/interop/websockets_client.py" ws://127.0.0.1:9101/

echo "interop: wsengine echo_check client -> python websockets server"
"$venv/bin/python" "$root/interop/websockets_server.py" 9102 &
pids+=($!)
wait_port 9102
timeout 120 "$bin/echo_check" ws://127.0.0.1:9102/ --require-deflate

echo "interop: all passed"
