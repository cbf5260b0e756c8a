#!/usr/bin/env bash
# Installs the Synapse homeserver used by tests and the demo (beside Dendrite) into a
# virtualenv in a cache folder, from PyPI, at a pinned version. Idempotent and fast when
# present (one import check, no network). Prints the virtualenv's folder.
# Synapse wants CPython >= 3.10: the `python3` on PATH is used when it is one (pyenv's
# 3.11 on the polyglot machines), else Debian's /usr/bin/python3 (3.11 on Debian 12, its
# venv module from the python3-venv package).
set -euo pipefail
version=1.163.2
# Synapse's PostgreSQL driver (the tests run it on PostgreSQL where the bridge is, as a
# clinic's production would); the binary wheel needs no compiler or libpq headers.
psycopg2_version=2.9.13
cache=${CAREBRIDGE_CACHE:-$HOME/.cache/carebridge}
venv="$cache/synapse-$version"

installed() {
  [ -f "$venv/.installed" ] && [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import sys, synapse; sys.exit(synapse.__version__ != '$version')" 2>/dev/null
}
has_psycopg2() {
  "$venv/bin/python" -c "import sys, psycopg2; sys.exit(not psycopg2.__version__.startswith('$psycopg2_version '))" 2>/dev/null
}
# A virtualenv made before psycopg2 was part of it gets it added, not made anew.
add_psycopg2() {
  has_psycopg2 && return 0
  echo "Adding psycopg2-binary $psycopg2_version to $venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "psycopg2-binary==$psycopg2_version" >&2
  has_psycopg2 || { echo "install-synapse: psycopg2 $psycopg2_version does not import from $venv" >&2; exit 1; }
}
if installed; then
  add_psycopg2
  echo "$venv"
  exit 0
fi

usable() { "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; }
python=
for candidate in "$(command -v python3 || true)" /usr/bin/python3; do
  if [ -n "$candidate" ] && usable "$candidate"; then python=$candidate; break; fi
done
if [ -z "$python" ]; then
  "$(dirname "$0")/debian-packages.sh" python3-venv
  python=/usr/bin/python3
fi

echo "Installing Synapse $version into $venv (first run only, about 30 seconds)" >&2
# A half-made virtualenv (an interrupted run, or one whose interpreter moved) is made
# anew; .installed marks a finished one (scripts in a virtualenv name its path, so it is
# made in place rather than moved there).
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$version" \
  "psycopg2-binary==$psycopg2_version" >&2
touch "$venv/.installed"
installed || { echo "install-synapse: Synapse $version does not import from $venv" >&2; exit 1; }
has_psycopg2 || { echo "install-synapse: psycopg2 $psycopg2_version does not import from $venv" >&2; exit 1; }
echo "$venv"
