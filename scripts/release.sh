#!/usr/bin/env bash
# Builds the release binaries (`make release`): carebridge for linux/amd64 and linux/arm64,
# cgo with -tags goolm (end-to-bridge encryption without libolm), -trimpath, no symbols
# (-s -w), the version from git tags (scripts/version.sh: mxmain's main.Tag, main.Commit,
# main.BuildTime), into
#   $DIST/carebridge-<version>-linux-<arch>   and   $DIST/SHA256SUMS (those files only).
# arm64 is cross-compiled with Debian's gcc-aarch64-linux-gnu, installed when missing.
# A release tag vX.Y.Z must match cmd/carebridge's Version (X.Y.Z), as mxmain wants for
# the binary to call itself that release. Each binary's --version is run and printed (the
# other architecture's under qemu-user, when installed); a tagged release's must print the
# tag. A tree with uncommitted changes is refused (its binaries could not be rebuilt from a
# tag) unless ALLOW_DIRTY=1.
# ARCHES="arm64" builds fewer; DIST defaults to ./dist.
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${DIST:-dist}
arches=${ARCHES:-amd64 arm64}
go=${GO:-go}

version=$(scripts/version.sh name)
ldflags="-s -w $(scripts/version.sh ldflags)"
case "$version" in
*-dirty)
  if [ "${ALLOW_DIRTY:-}" != 1 ]; then
    echo "release: the tree has uncommitted changes; commit them (and tag the release: see the README, \"Releases\"), or set ALLOW_DIRTY=1 for a test build" >&2
    exit 1
  fi ;;
esac
if [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  source_version=$(scripts/version.sh source)
  if [ "v$source_version" != "$version" ]; then
    echo "release: the tag is $version but cmd/carebridge/main.go says Version = \"$source_version\": set it to \"${version#v}\" in the release commit (see the README, \"Releases\")" >&2
    exit 1
  fi
fi

host=$($go env GOHOSTARCH)
mkdir -p "$dist"
files=()
for arch in $arches; do
  cc=gcc
  if [ "$arch" != "$host" ]; then
    case "$arch" in
    arm64) cc=aarch64-linux-gnu-gcc; pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
    amd64) cc=x86_64-linux-gnu-gcc; pkgs=(gcc-x86-64-linux-gnu libc6-dev-amd64-cross) ;;
    *) echo "release: no cross compiler known for linux/$arch" >&2; exit 1 ;;
    esac
    command -v "$cc" >/dev/null || scripts/debian-packages.sh "${pkgs[@]}"
  fi
  out="carebridge-$version-linux-$arch"
  printf '==> Building %s\n' "$dist/$out" >&2
  start=$(date +%s)
  env CGO_ENABLED=1 GOOS=linux GOARCH="$arch" CC="$cc" GOFLAGS= \
    "$go" build -tags goolm -trimpath -buildvcs=false -ldflags "$ldflags" -o "$dist/$out" ./cmd/carebridge
  printf '    %s s, %s bytes\n' "$(( $(date +%s) - start ))" "$(stat -c %s "$dist/$out")" >&2
  # Run what was built: natively, or under qemu-user for the other architecture.
  run=()
  if [ "$arch" != "$host" ]; then
    case "$arch" in
    arm64) run=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
    amd64) run=(qemu-x86_64 -L /usr/x86_64-linux-gnu) ;;
    esac
  fi
  if [ ${#run[@]} -eq 0 ] || command -v "${run[0]}" >/dev/null; then
    line=$("${run[@]}" "$dist/$out" --version)
    printf '    %s\n' "$line" >&2
    # A clean tagged commit's name is the tag, and its binary must say so.
    if [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ && "$line" != "carebridge $version ("* ]]; then
      echo "release: $out --version does not print the tag $version" >&2
      exit 1
    fi
  else
    printf '    not run: %s is missing (apt-get install qemu-user)\n' "${run[0]}" >&2
  fi
  files+=("$out")
done
(cd "$dist" && sha256sum "${files[@]}" > SHA256SUMS)
printf '==> %s/SHA256SUMS\n' "$dist" >&2
cat "$dist/SHA256SUMS"
