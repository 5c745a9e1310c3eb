#!/usr/bin/env bash
# Installs Autobahn|Testsuite (Python 2.7, from PyPI) into a private virtualenv on first use and
# prints the path of its `wstest`. Idempotent: a second call only prints the path.
set -euo pipefail

root="${AUTOBAHN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/wsengine/autobahn}"
venv="$root/venv"
wstest="$venv/bin/wstest"

if [ -x "$wstest" ] && "$wstest" -a >/dev/null 2>&1; then
  echo "$wstest"
  exit 0
fi

py2=""
for candidate in "${PYTHON2:-}" "$HOME/.pyenv/versions/2.7.18/bin/python" python2.7 python2; do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[0] != 2)' 2>/dev/null; then
    py2="$candidate"
    break
  fi
done
if [ -z "$py2" ]; then
  echo "autobahn-install: no Python 2.7 found (tried \$PYTHON2, ~/.pyenv/versions/2.7.18, python2.7)." >&2
  echo "autobahn-install: the Autobahn testsuite needs Python 2.7; install it (pyenv install 2.7.18) and retry." >&2
  exit 1
fi

echo "autobahn-install: installing autobahntestsuite into $venv (one time)" >&2
rm -rf "$venv" "$root/virtualenv-pkg"
mkdir -p "$root"
"$py2" -m pip install --quiet --disable-pip-version-check --target "$root/virtualenv-pkg" 'virtualenv<20.22' >&2
PYTHONPATH="$root/virtualenv-pkg" "$py2" -m virtualenv --quiet "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check autobahntestsuite >&2
"$wstest" -a >&2
echo "$wstest"
