#!/usr/bin/env bash
# Installs the Dendrite homeserver used by tests and the demo into a cache folder outside
# the module, so its dependencies never mix with carebridge's. Idempotent: a cached build
# of the pinned version is reused. Prints the folder holding the binaries.
set -euo pipefail
version=v0.13.8
cache=${CAREBRIDGE_CACHE:-$HOME/.cache/carebridge}
dir="$cache/dendrite-$version"
bins=(dendrite generate-config generate-keys create-account)
ok=1
for b in "${bins[@]}"; do [ -x "$dir/bin/$b" ] || ok=0; done
if [ "$ok" = 0 ]; then
  mkdir -p "$dir/bin"
  echo "Installing Dendrite $version into $dir (first run only, about 2 minutes)" >&2
  # go install in module mode ignores the caller's go.mod; run it from a neutral folder.
  (cd "$dir" && GOBIN="$dir/bin" GOFLAGS=-buildvcs=false CGO_ENABLED=1 \
    go install $(printf "github.com/matrix-org/dendrite/cmd/%s@$version " "${bins[@]}")) >&2
fi
echo "$dir/bin"
