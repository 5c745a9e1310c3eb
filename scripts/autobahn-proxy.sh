#!/usr/bin/env bash
# The testee of `scripts/autobahn.sh proxy`: `wsengine proxy` on ADDR in front of an echo
# server on 127.0.0.1:$AUTOBAHN_BACKEND_PORT (autobahn.sh sets it to the suite's port + 1000).
# Both end with this script.
#
#   scripts/autobahn-proxy.sh ADDR PROXY_BIN ECHO_BIN
set -euo pipefail
addr="$1" proxy_bin="$2" echo_bin="$3"
backend="127.0.0.1:${AUTOBAHN_BACKEND_PORT:-10001}"
dir="$(mktemp -d)"
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 0' TERM INT
cat >"$dir/proxy.toml" <<TOML
listen = "$addr"
[[routes]]
path = "/"
upstream = "echo"
[[upstreams]]
name = "echo"
url = "ws://$backend"
[health_check]
interval = "0s"
[limits]
# The suite sends 16 MiB frames (9.*); the echo server takes them too.
max_frame_size = 16777216
TOML
"$echo_bin" "$backend" &
pids+=($!)
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/${backend%:*}/${backend##*:}") 2>/dev/null; then break; fi
  sleep 0.1
done
case "$(basename "$proxy_bin")" in
  # The library's example (same relay, no signal handling) takes the file alone.
  proxy_from_file) "$proxy_bin" "$dir/proxy.toml" >/dev/null & ;;
  *) "$proxy_bin" --log warn proxy --config "$dir/proxy.toml" & ;;
esac
pids+=($!)
wait -n "${pids[@]}"
