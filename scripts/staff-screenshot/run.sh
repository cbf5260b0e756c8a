#!/usr/bin/env bash
# Regenerates docs/screenshots/staff-room.png: a carebridge conversation room as a nurse
# sees it in a real Matrix web client with end-to-end encryption (Hydrogen, built from the
# npm package hydrogen-view-sdk), after `carebridge-demo script` played the triage
# conversation. Everything runs on this machine, in a throwaway demo data folder, on its
# own ports; nothing is installed into the repository.
#
#   scripts/staff-screenshot/run.sh [OUTPUT.png]
#
# Needs Go (cgo), Node 18+ with npm (the npm registry), python3, /usr/bin/chromium, and for
# the 🔒 marks the Debian package fonts-noto-color-emoji. Environment: CAREBRIDGE_SHOT_WORK
# (build folder, default ~/.cache/carebridge/staff-screenshot), HS_PORT, BRIDGE_PORT,
# CLIENT_PORT (default 18448, 29448, 18449), CHROMIUM (default /usr/bin/chromium),
# SHOT_DEBUG (a folder for screenshots of the intermediate steps).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(realpath -m "${1:-$root/docs/screenshots/staff-room.png}")"
work="${CAREBRIDGE_SHOT_WORK:-$HOME/.cache/carebridge/staff-screenshot}"
hs_port="${HS_PORT:-18448}"
bridge_port="${BRIDGE_PORT:-29448}"
client_port="${CLIENT_PORT:-18449}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
hs_url="http://127.0.0.1:$hs_port"
bridge_url="http://127.0.0.1:$bridge_port"
client_url="http://127.0.0.1:$client_port/"

step() { echo "==> $*"; }
die() { echo "staff-screenshot: $*" >&2; exit 1; }

for tool in go node npm python3; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
[ -x "$chromium" ] || die "no Chromium at $chromium (apt-get install chromium, or set CHROMIUM)"
fc-list : family 2>/dev/null | grep -i 'color emoji' >/dev/null ||
  echo "staff-screenshot: warning: no colour emoji font; the 🔒 marks will show as boxes (apt-get install fonts-noto-color-emoji)" >&2
for port in "$hs_port" "$bridge_port" "$client_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is in use; set HS_PORT, BRIDGE_PORT or CLIENT_PORT"
  fi
done

# 1. The web client: Hydrogen from hydrogen-view-sdk, built with vite.
mkdir -p "$work"
for f in package.json vite.config.js index.html main.js shot.mjs; do
  cp "$here/$f" "$work/$f"
done
cd "$work"
if [ ! -d node_modules ] || ! cmp -s package.json node_modules/.carebridge-package.json; then
  step "Installing Hydrogen, vite and playwright-core into $work (npm)"
  npm install --no-audit --no-fund --loglevel=error
  cp package.json node_modules/.carebridge-package.json
fi
step "Building Hydrogen"
npx vite build --logLevel warn
printf '{"defaultHomeServer": "%s"}\n' "$hs_url" >dist/config.json

# 2. carebridge and its demo, built from this working tree.
step "Building carebridge and carebridge-demo"
(cd "$root" && CGO_ENABLED=1 go build -tags goolm -buildvcs=false -o "$work/bin/carebridge" ./cmd/carebridge &&
  CGO_ENABLED=1 go build -tags goolm -buildvcs=false -o "$work/bin/carebridge-demo" ./cmd/carebridge-demo)

data="$(mktemp -d /tmp/carebridge-shot-demo.XXXXXX)"
demo_pid="" http_pid=""
cleanup() {
  [ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null || true
  if [ -n "$demo_pid" ]; then
    kill -TERM "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

# 3. The demo (homeserver, bridge with the simulated phone), in a throwaway folder.
step "Starting the demo in $data (homeserver $hs_url, bridge $bridge_url)"
(cd "$root" && exec "$work/bin/carebridge-demo" -data "$data" -bridge "$work/bin/carebridge" \
  -homeserver-port "$hs_port" -bridge-port "$bridge_port") >"$data/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 600); do
  grep -q 'carebridge demo is running' "$data/demo.log" && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$data/demo.log" >&2; die "the demo stopped"; }
  sleep 0.5
done
grep -q 'carebridge demo is running' "$data/demo.log" || { cat "$data/demo.log" >&2; die "the demo did not start in 5 minutes"; }

# 4. Serve Hydrogen, sign in, play the conversation, screenshot the room.
python3 -m http.server "$client_port" --bind 127.0.0.1 --directory "$work/dist" >/dev/null 2>&1 &
http_pid=$!
mkdir -p "$(dirname "$out")"
debug=()
if [ -n "${SHOT_DEBUG:-}" ]; then
  mkdir -p "$SHOT_DEBUG"
  debug=(--debug "$(realpath "$SHOT_DEBUG")")
fi
node shot.mjs --client "$client_url" --homeserver "$hs_url" --out "$out" --chromium "$chromium" "${debug[@]}" \
  -- "$work/bin/carebridge-demo" script -bridge "$bridge_url" -homeserver "$hs_url"
