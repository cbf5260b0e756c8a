#!/usr/bin/env bash
# Installs the Debian packages named that are not installed yet, as root or through sudo:
#   scripts/debian-packages.sh gcc-aarch64-linux-gnu libc6-dev-arm64-cross
# Quick (one dpkg query, no network) when all are there.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "debian-packages: installing ${missing[*]} needs root; run as root or install sudo" >&2; exit 1
  fi
}
printf '==> Installing %s (Debian packages, first run only)\n' "${missing[*]}" >&2
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
