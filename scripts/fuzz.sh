#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while.
#
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags...]
#
# Targets: frame_header utf8_chunks server_handshake client_handshake server_connection
#          client_connection inflate operations  (bodies in core/src/fuzz.rs)
#
# cargo-fuzz needs nightly-only compiler flags (-Zsanitizer=address and friends). Only the
# stable toolchain exists here and no other can be fetched, so the script sets
# RUSTC_BOOTSTRAP=1, the compiler's bootstrap switch that lets a stable rustc accept them.
# cargo-fuzz itself is installed from crates.io on first use. New inputs that reach new
# coverage are added to fuzz/corpus/TARGET; crashes land in fuzz/artifacts/TARGET.
set -euo pipefail

target="${1:?usage: scripts/fuzz.sh TARGET SECONDS}"
seconds="${2:?usage: scripts/fuzz.sh TARGET SECONDS}"
shift 2
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io (one time)"
  cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
exec cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 "$@"
