// Package testenv starts the real things carebridge's integration tests talk to: a
// Dendrite or Synapse homeserver on loopback and an independent E2EE Matrix client
// (matrix-nio) playing a member of staff. A missing dependency skips the test on a developer's
// machine and fails it under `make test` and in CI, naming what to install.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/carebridge/carebridge/internal/dendrite"
)

// Names of the external dependencies, as passed to RequireDep.
const (
	DepDendrite = "Dendrite"
	DepNio      = "python3-matrix-nio"
	// DepLoopbackAlias is binding 127.0.0.2 and up, which federation tests need.
	DepLoopbackAlias = "loopback addresses beyond 127.0.0.1"
)

var installHints = map[string]string{
	DepDendrite:      "run scripts/install-dendrite.sh (needs Go and the module proxy) or point CAREBRIDGE_DENDRITE_BIN at a folder holding dendrite, generate-config, generate-keys and create-account",
	DepNio:           "apt-get install -y python3-matrix-nio python3-olm (run by /usr/bin/python3)",
	DepLoopbackAlias: "Linux routes all of 127/8 to lo; on macOS run `sudo ifconfig lo0 alias 127.0.0.2 up` (and .3)",
}

// RequireDep stops the test when a dependency it needs is missing (err != nil): under
// `make test` (which installs everything, CAREBRIDGE_TEST_STRICT=1) and in CI (CI=true)
// the test fails; elsewhere (a bare `go test`) it is skipped, and gotestsum's summary
// lists the skip with its reason.
func RequireDep(t testing.TB, name string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	hint := installHints[name]
	if hint == "" {
		hint = "install it"
	}
	if os.Getenv("CI") == "true" || os.Getenv("CAREBRIDGE_TEST_STRICT") == "1" {
		t.Fatalf("Missing test dependency %s: %v. To install: %s", name, err, hint)
	}
	t.Skipf("Skipping: missing test dependency %s: %v. To install: %s", name, err, hint)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePortOn("127.0.0.1")
	if err != nil {
		t.Fatalf("failed to find a free port: %v", err)
	}
	return port
}

// handedOut are the ports this process gave out: a port is released as soon as it is
// found, and the system may offer it again before its user binds it (two homeservers
// of one test got the same port so).
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePortOn finds a port free on host that this process has not handed out before.
func freePortOn(host string) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("cannot listen on %s: %w", host, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		handedOut.Lock()
		seen := handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if !seen {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port on %s that this process has not handed out already", host)
}

// RepoRoot walks up from the working directory (a test runs in its package folder)
// to the folder holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// tailFile returns the last n lines of a file, for error messages.
// keepLog copies a log of a failed test into the folder named by
// CAREBRIDGE_TEST_KEEP_LOGS (unset: nothing is kept), as TEST-NAME.log, so that
// a failure in CI or under load can be read whole after the test's folders are gone.
func keepLog(t testing.TB, path, name string) {
	dir := os.Getenv("CAREBRIDGE_TEST_KEEP_LOGS")
	if dir == "" || !t.Failed() {
		return
	}
	data, err := os.ReadFile(path)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	dst := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-"+name+".log")
	if err == nil {
		err = os.WriteFile(dst, data, 0o644)
	}
	if err != nil {
		t.Logf("keeping %s: %v", path, err)
		return
	}
	t.Logf("kept %s as %s", path, dst)
}

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return dendrite.LastLines(string(data), n)
}
