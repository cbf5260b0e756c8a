#!/usr/bin/env bash
# Installs schemathesis (the OpenAPI fuzzer TestAPIUnderSchemathesis runs against the
# integration API) into a virtualenv in the cache folder, pinned. Idempotent: a cached
# install of the pinned version is reused. Prints the path of its `st` command.
set -euo pipefail
version=4.32.5
cache=${CAREBRIDGE_CACHE:-$HOME/.cache/carebridge}
dir="$cache/schemathesis-$version"
if ! "$dir/bin/st" --version 2>/dev/null | grep -qF "$version"; then
  echo "Installing schemathesis $version into $dir (first run only, about 30 seconds)" >&2
  rm -rf "$dir"
  # Debian's own python3 makes virtualenvs only with python3-venv.
  python3 -c 'import ensurepip' 2>/dev/null || "$(dirname "$0")/debian-packages.sh" python3-venv
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" >&2
fi
echo "$dir/bin/st"
