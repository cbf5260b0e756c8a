#!/usr/bin/env bash
# Lighthouse (mobile, its default) on the patient's pages of a running demo: the link, the
# code page and the chat. `make demo` must run in another terminal; `carebridge-demo
# script` plays a conversation through it first, so that the chat holds a staff message,
# the patient's reply and a photo, and hands over the patient's signed-in browser's
# cookies for the chat page (the demo's patient is simulated).
#
# Prints performance, accessibility and best practices for each page, and what kept a
# score of the last two under 100; exits 1 unless both are 100 on every page. The JSON and
# HTML reports go to $LIGHTHOUSE_OUT (default: a new temporary folder, printed).
#
#   DEMO_BRIDGE      the demo bridge (http://127.0.0.1:29340)
#   DEMO_HOMESERVER  the demo homeserver (http://127.0.0.1:8008)
set -euo pipefail
cd "$(dirname "$0")/.."
bridge=${DEMO_BRIDGE:-http://127.0.0.1:29340}
homeserver=${DEMO_HOMESERVER:-http://127.0.0.1:8008}
cache=${CAREBRIDGE_CACHE:-$HOME/.cache/carebridge}
# 12.2.3 runs on Node 20 (13 wants Node 22).
lighthouse_version=12.2.3
out=${LIGHTHOUSE_OUT:-$(mktemp -d -t carebridge-lighthouse.XXXXXX)}

log() { printf '==> %s\n' "$*" >&2; }

command -v npm >/dev/null || { echo "lighthouse: npm is needed (apt-get install npm)" >&2; exit 1; }
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$chrome" ] || { echo "lighthouse: Chromium is needed (apt-get install chromium)" >&2; exit 1; }
lh="$cache/lighthouse/node_modules/.bin/lighthouse"
if ! grep -qs "\"version\": \"$lighthouse_version\"" "$cache/lighthouse/node_modules/lighthouse/package.json"; then
  log "Installing Lighthouse $lighthouse_version into $cache/lighthouse (npm)"
  mkdir -p "$cache/lighthouse"
  npm install --silent --no-audit --no-fund --prefix "$cache/lighthouse" -E "lighthouse@$lighthouse_version" >&2
fi

work=$(mktemp -d -t carebridge-lighthouse-session.XXXXXX)
trap 'rm -rf "$work"' EXIT
log "Playing a conversation through the demo at $bridge (carebridge-demo script)"
if ! bin/carebridge-demo script -bridge "$bridge" -homeserver "$homeserver" -pages "$work/pages.json" >"$work/script.log" 2>&1; then
  cat "$work/script.log" >&2
  exit 1
fi
field() { node -e 'const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(p[process.argv[2]])' "$work/pages.json" "$1"; }
cookie_header=$(node -e 'process.stdout.write(JSON.stringify({Cookie: process.argv[1]}))' "$(field cookie)")

mkdir -p "$out"
flags="--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run"
run() { # name url [extra lighthouse arguments]
  local name=$1 url=$2
  shift 2
  log "Lighthouse: $name page"
  "$lh" "$url" --quiet --chrome-path="$chrome" --chrome-flags="$flags" \
    --only-categories=performance,accessibility,best-practices \
    --output=json --output=html --output-path="$out/$name" "$@"
}
run link "$(field link)"
run code "$(field code_page)"
run chat "$(field chat)" --extra-headers="$cookie_header"

node - "$out" <<'JS'
const fs = require('fs');
const out = process.argv[2];
let ok = true;
const pct = (s) => (s === null ? 'n/a' : String(Math.round(s * 100)));
console.log('\npage   performance  accessibility  best practices');
const notes = [];
for (const name of ['link', 'code', 'chat']) {
  const r = JSON.parse(fs.readFileSync(`${out}/${name}.report.json`, 'utf8'));
  const c = r.categories;
  console.log(`${name.padEnd(6)} ${pct(c.performance.score).padStart(11)}  ${pct(c.accessibility.score).padStart(13)}  ${pct(c['best-practices'].score).padStart(14)}`);
  for (const cat of ['accessibility', 'best-practices']) {
    if (c[cat].score !== 1) {
      ok = false;
      for (const ref of c[cat].auditRefs) {
        const a = r.audits[ref.id];
        if (ref.weight > 0 && a.score !== null && a.score < 1) notes.push(`${name}: ${cat}: ${a.id}: ${a.title}`);
      }
    }
  }
}
console.log(`\nReports: ${out}/{link,code,chat}.report.{html,json}`);
if (!ok) {
  console.log('\nBelow 100:\n  ' + notes.join('\n  '));
  process.exit(1);
}
JS
