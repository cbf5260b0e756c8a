#!/usr/bin/env bash
# Which carebridge the checkout in the current directory builds, from git:
#   scripts/version.sh name     the version for file names: `git describe --tags --dirty`
#                               (v1.2.3, v1.2.3-4-g0123abc, v1.2.3-dirty; a commit hash
#                               before the first tag)
#   scripts/version.sh ldflags  the -X flags for internal/version: the tag only when HEAD
#                               is a clean, tagged commit (carebridge --version then prints
#                               it), the nearest tag as the base of a "+dev" version, the
#                               commit, and the build time (the commit's own time for a clean
#                               tree, so that a release rebuilds to the same bytes)
# Release tags are v<major>.<minor>.<patch>; other tags are ignored.
set -euo pipefail
pkg=github.com/carebridge/carebridge/internal/version
match='v[0-9]*.[0-9]*.[0-9]*'

dirty=
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty=1; fi

case "${1:-}" in
name)
  git describe --tags --match "$match" --always --dirty 2>/dev/null || echo unknown
  ;;
ldflags)
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  tag= base=
  if [ -z "$dirty" ]; then tag=$(git describe --tags --match "$match" --exact-match 2>/dev/null || true); fi
  base=$(git describe --tags --match "$match" --abbrev=0 2>/dev/null || true)
  if [ -z "$dirty" ] && [ "$commit" != unknown ]; then
    build_time=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)
  else
    build_time=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  fi
  flags="-X $pkg.Tag=$tag -X $pkg.Commit=$commit -X $pkg.BuildTime=$build_time"
  if [ -n "$base" ]; then flags="$flags -X $pkg.Base=$base"; fi
  echo "$flags"
  ;;
*)
  echo "usage: scripts/version.sh name|ldflags" >&2
  exit 2
  ;;
esac
