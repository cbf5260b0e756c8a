# carebridge: build, test and run. Builds use cgo and -tags goolm (pure-Go Olm, so
# end-to-bridge encryption is compiled in without libolm).
GO        ?= go
TAGS      ?= goolm
# The version, commit and build time from git (scripts/version.sh): `carebridge --version`
# prints the tag on a clean tagged commit.
LDFLAGS   := $(shell ./scripts/version.sh ldflags)
export CGO_ENABLED := 1
export GOFLAGS := -tags=$(TAGS) -buildvcs=false

.PHONY: build test test-unit vet deps clean demo demo-reset release

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/carebridge ./cmd/carebridge

CACHE     ?= $(HOME)/.cache/carebridge
GOTESTSUM := $(CACHE)/bin/gotestsum
export CAREBRIDGE_TEST_PG_PORT ?= 54329

# Installs and starts what the tests need, idempotently (Debian packages, a PostgreSQL
# test cluster on 127.0.0.1:$(CAREBRIDGE_TEST_PG_PORT), Dendrite, Synapse and gotestsum
# cached under ~/.cache/carebridge): scripts/test-deps.sh.
deps:
	./scripts/test-deps.sh

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

# Everything: unit tests, integration tests on SQLite and PostgreSQL, the acceptance test
# with Dendrite and an independent E2EE client, and the arm64 release build run under
# qemu-user (scripts/: its own package, so it builds while the other packages test). A
# missing dependency fails its tests here (deps installed it); gotestsum ends the run with
# the counts and every skip's reason.
test: deps vet build
	CAREBRIDGE_BIN=$(CURDIR)/bin/carebridge CAREBRIDGE_TEST_STRICT=1 CAREBRIDGE_TEST_SYNAPSE_DB=$(SYNAPSE_DB) \
	  $(GOTESTSUM) --format pkgname-and-test-fails --format-hide-empty-pkg -- -count=1 -timeout 25m ./...
	# The clock file reader exists only in testclock builds (the tests that move time build one).
	$(GO) test -count=1 -tags $(TAGS),testclock -run Clock ./workflow/
	# The spike of issue 18 (docs/e2ee-to-the-patient.md) builds only with e2eepatient.
	$(GO) vet -tags $(TAGS),e2eepatient ./securechat/e2ee/ ./bridge/ ./cmd/carebridge/
	$(GO) test -count=1 -tags $(TAGS),e2eepatient ./securechat/e2ee/
	# ...and in the bridge (e2eepatient.go): its own binary, one Synapse test (about 13 s).
	$(GO) build -tags $(TAGS),e2eepatient -o bin/carebridge-e2ee ./cmd/carebridge
	$(GO) test -count=1 -tags $(TAGS),e2eepatient -run 'SecureRoomEventsAreKeptFromBridgev2|EveryCommandIsDefined|E2EEPatientPageNeedsTheWasmFolderToStart' ./bridge/
	CAREBRIDGE_BIN=$(CURDIR)/bin/carebridge-e2ee CAREBRIDGE_TEST_STRICT=1 \
	  $(GO) test -count=1 -tags $(TAGS),e2eepatient -run TestE2EERoomInTheBridgeOnSynapse ./cmd/carebridge/
	# The tests that claim a limit under real concurrency, again under the race detector.
	$(GO) test -count=1 -race -run '$(RACE_TESTS)' ./securechat/ ./database/ ./outbox/ ./bridge/

# The Synapse variants of the end-to-end tests run with Synapse and the bridge on SQLite
# and on PostgreSQL (as a clinic's production runs).
SYNAPSE_DB ?= both

RACE_TESTS = UnderConcurrency|InABurst|Race|Concurrent|AtOnceEachInOrder

test-unit:
	$(GO) test -count=1 -short ./...

# Everything local, no Twilio account: Dendrite (or Synapse: `make demo HOMESERVER=synapse`),
# the bridge with the simulated phone, a staff account. Prints what to open; Ctrl-C stops
# it; data stays in ./demo-data (./demo-data-synapse with Synapse).
HOMESERVER ?= dendrite
DEMO_DATA  ?= demo-data$(if $(filter synapse,$(HOMESERVER)),-synapse)
demo: build
	$(GO) build -o bin/carebridge-demo ./cmd/carebridge-demo
	./bin/carebridge-demo -data $(DEMO_DATA) -bridge bin/carebridge -homeserver-kind $(HOMESERVER)

demo-reset:
	rm -rf demo-data demo-data-synapse

clean:
	rm -rf bin dist

# Release binaries for linux/amd64 and linux/arm64 (-trimpath, no symbols, the version
# from the git tag) and their SHA256SUMS in dist/: scripts/release.sh. See the README,
# "Releases".
release:
	./scripts/release.sh

# The release tests alone (they run in `make test` too): a tagged clone of HEAD built for
# arm64 by scripts/release.sh, checked (stripped, -trimpath, SHA256SUMS) and run under
# qemu-aarch64, whose --version must print the tag; and scripts/version.sh.
.PHONY: release-test
release-test: deps
	CAREBRIDGE_TEST_STRICT=1 $(GO) test -count=1 -v ./scripts/

# Plays a triage conversation through a running `make demo` (start it in another
# terminal first): the patient's phone, staff in an E2EE Matrix client, the secure chat;
# prints what each side saw.
.PHONY: demo-script
demo-script:
	$(GO) build -o bin/carebridge-demo ./cmd/carebridge-demo
	./bin/carebridge-demo script

# The README's pictures of the patient's side (docs/screenshots: the simulated phone, the
# link, code and chat pages at 390 px) from a running `make demo` (start it in another
# terminal first): plays the demo script's conversation, then headless Chromium.
DEMO_BRIDGE     ?= http://127.0.0.1:29340
DEMO_HOMESERVER ?= http://127.0.0.1:8008
.PHONY: screenshots
screenshots:
	$(GO) build -o bin/carebridge-demo ./cmd/carebridge-demo
	./bin/carebridge-demo screenshots -bridge $(DEMO_BRIDGE) -homeserver $(DEMO_HOMESERVER) -out docs/screenshots

# Lighthouse (mobile) on the patient's link, code and chat pages of a running `make demo`
# (start it in another terminal first): prints the scores and fails unless accessibility
# and best practices are 100 on each. Installs Lighthouse (npm) into ~/.cache/carebridge.
# DEMO_BRIDGE and DEMO_HOMESERVER point it at a demo on other ports.
.PHONY: lighthouse
lighthouse:
	$(GO) build -o bin/carebridge-demo ./cmd/carebridge-demo
	DEMO_BRIDGE=$(DEMO_BRIDGE) DEMO_HOMESERVER=$(DEMO_HOMESERVER) ./scripts/lighthouse.sh

# Measures the bridge against the homeserver's own limit in the same run (issue 8):
# inbound webhooks and outbound texts on SQLite and PostgreSQL, each beside a baseline
# without the bridge, with the fake Twilio at -twilio-latency (200ms) a call and a head-of-line
# phase (one conversation's sends hang); prints a table and writes bench/results/<time>.json.
# BENCH_ARGS passes flags, e.g. `make bench BENCH_ARGS="-n 200"`.
.PHONY: bench
bench: deps build
	$(GO) build -o bin/carebridge-bench ./cmd/carebridge-bench
	CAREBRIDGE_BIN=$(CURDIR)/bin/carebridge ./bin/carebridge-bench $(BENCH_ARGS)
