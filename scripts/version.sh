#!/usr/bin/env bash
# Which carebridge the checkout in the current directory builds, from git:
#   scripts/version.sh name     the version for file names: `git describe --tags --dirty`
#                               (v1.2.3, v1.2.3-4-g0123abc, v1.2.3-dirty; a commit hash
#                               before the first tag)
#   scripts/version.sh ldflags  the -X flags for main.Tag, main.Commit and main.BuildTime,
#                               which cmd/carebridge hands to mxmain's InitVersion (the
#                               way mautrix's bridges are built): the tag only when HEAD is
#                               a clean, tagged commit (carebridge --version then prints it,
#                               if it is cmd/carebridge's Version), the commit, and the
#                               build time (the commit's own time for a clean tree, so that
#                               a release rebuilds to the same bytes)
#   scripts/version.sh source   the Version written in cmd/carebridge/main.go
# Release tags are v<major>.<minor>.<patch>; other tags are ignored.
set -euo pipefail
match='v[0-9]*.[0-9]*.[0-9]*'

dirty=
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty=1; fi

case "${1:-}" in
name)
  git describe --tags --match "$match" --always --dirty 2>/dev/null || echo unknown
  ;;
ldflags)
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  tag=
  if [ -z "$dirty" ]; then tag=$(git describe --tags --match "$match" --exact-match 2>/dev/null || true); fi
  if [ -z "$dirty" ] && [ "$commit" != unknown ]; then
    build_time=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ)
  else
    build_time=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  fi
  echo "-X main.Tag=$tag -X main.Commit=$commit -X main.BuildTime=$build_time"
  ;;
source)
  sed -n 's/^const Version = "\(.*\)"$/\1/p' "$(dirname "$0")/../cmd/carebridge/main.go"
  ;;
*)
  echo "usage: scripts/version.sh name|ldflags|source" >&2
  exit 2
  ;;
esac
