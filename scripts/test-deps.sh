#!/usr/bin/env bash
# Installs and starts everything `make test` needs on a Debian machine, idempotently, and
# fast when all is there already (a few checks, no network):
#   - gcc, make (cgo builds), python3-matrix-nio + python3-olm (the E2EE staff client),
#     chromium (the patient pages), postgresql, and for the release test the arm64 cross
#     compiler and qemu-user (Debian's packages; needs root or sudo);
#   - a PostgreSQL cluster for the tests alone, "carebridge-test" on 127.0.0.1:$port with
#     trust auth on loopback (Debian's default cluster asks for a password there and is left
#     untouched), durability off since test data is thrown away;
#   - Dendrite and gotestsum, built into ~/.cache/carebridge (outside the module),
#     schemathesis and Synapse from PyPI in virtualenvs there (scripts/install-schemathesis.sh,
#     scripts/install-synapse.sh), and from npm into ~/.cache/carebridge/node axe-core (the
#     pages' accessibility check) and Element's crypto: matrix-js-sdk with its Rust crypto
#     and matrix-encrypt-attachment (the Element staff agent, internal/testenv/element.go).
# With CAREBRIDGE_TEST_POSTGRES set, that server is used and no cluster is made.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${CAREBRIDGE_TEST_PG_PORT:-54329}
cache=${CAREBRIDGE_CACHE:-$HOME/.cache/carebridge}
gotestsum_version=v1.13.0
axe_version=4.14.1 # as internal/testenv/axe.go says
# As internal/testenv/element.go says.
element_packages=(matrix-js-sdk@43.0.0 @matrix-org/matrix-sdk-crypto-wasm@18.9.0 matrix-encrypt-attachment@1.0.3)

log() { printf '==> %s\n' "$*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "test-deps: '$*' needs root; run as root or install sudo" >&2; exit 1
  fi
}

need_apt=()
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)
command -v make >/dev/null || need_apt+=(make)
/usr/bin/python3 -c 'import nio, olm' 2>/dev/null || need_apt+=(python3-matrix-nio python3-olm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# TestReleaseBinaryRunsOnARM64 (scripts/): the arm64 release build and its --version.
command -v aarch64-linux-gnu-gcc >/dev/null && [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] ||
  need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
command -v npm >/dev/null || need_apt+=(npm)
if [ -z "${CAREBRIDGE_TEST_POSTGRES:-}" ] && ! command -v pg_createcluster >/dev/null; then
  need_apt+=(postgresql)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  log "Installing ${need_apt[*]} (Debian packages, first run only)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

pg_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -z "${CAREBRIDGE_TEST_POSTGRES:-}" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  if [ ! -d "/etc/postgresql/$version/carebridge-test" ]; then
    log "Creating the PostgreSQL $version test cluster on 127.0.0.1:$port (trust on loopback)"
    as_root pg_createcluster --quiet -p "$port" \
      -o max_connections=400 \
      -o fsync=off -o synchronous_commit=off -o full_page_writes=off \
      "$version" carebridge-test -- --auth=trust >/dev/null
  fi
  if ! pg_listening "$port"; then
    log "Starting the PostgreSQL test cluster"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" carebridge-test start
    for _ in $(seq 1 30); do pg_listening "$port" && break; sleep 0.5; done
    pg_listening "$port" || { echo "PostgreSQL test cluster did not start on 127.0.0.1:$port; see /var/log/postgresql/postgresql-$version-carebridge-test.log" >&2; exit 1; }
  fi
fi

./scripts/install-dendrite.sh >/dev/null
./scripts/install-schemathesis.sh >/dev/null
./scripts/install-synapse.sh >/dev/null

if [ ! -x "$cache/bin/gotestsum" ]; then
  log "Installing gotestsum $gotestsum_version into $cache/bin"
  mkdir -p "$cache/bin"
  (cd "$cache" && GOBIN="$cache/bin" GOFLAGS= go install "gotest.tools/gotestsum@$gotestsum_version") >&2
fi

if ! grep -qs "\"version\": \"$axe_version\"" "$cache/node/node_modules/axe-core/package.json"; then
  log "Installing axe-core $axe_version into $cache/node (npm)"
  mkdir -p "$cache/node"
  npm install --silent --no-audit --no-fund --prefix "$cache/node" -E "axe-core@$axe_version" >&2
fi

# npm's own list of what the folder holds (package.json), read without npm: a few ms.
missing=()
for pkg in "${element_packages[@]}"; do
  grep -qs "\"${pkg%@*}\": \"${pkg##*@}\"" "$cache/node/package.json" &&
    [ -f "$cache/node/node_modules/${pkg%@*}/package.json" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "Installing ${missing[*]} into $cache/node (npm)"
  mkdir -p "$cache/node"
  npm install --silent --no-audit --no-fund --prefix "$cache/node" -E "${element_packages[@]}" >&2
fi
