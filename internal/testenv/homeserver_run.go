package testenv

import (
	"strings"
	"sync"
	"testing"
)

// serverProgram is what a test homeserver needs of its program (internal/dendrite,
// internal/synapse).
type serverProgram interface {
	Start() error
	Stop()
	Running() bool
	LogTail(n int) string
	CreateUser(localpart, password string) (string, error)
}

// serverRun is what Dendrite and Synapse share: restarting, stopping, failing the test
// with the log's tail, and making accounts.
type serverRun struct {
	t        testing.TB
	name     string // "Dendrite"
	prog     serverProgram
	logPath  func() string
	started  bool
	logShown bool // the log tail is already in a failure message
}

// cleanup stops the server at the end of the test, with its log tail when the test failed.
func (r *serverRun) cleanup() {
	if r.t.Failed() && r.started && !r.logShown {
		r.t.Logf("%s log tail (%s):\n%s", r.name, r.logPath(), r.prog.LogTail(30))
	}
	r.prog.Stop()
	if r.started {
		keepLog(r.t, r.logPath(), strings.ToLower(r.name))
	}
}

// Restart runs the homeserver again after Stop, with the config, signing key and
// databases Start wrote, as an operator restarting it would: users, access tokens,
// rooms and devices survive.
func (r *serverRun) Restart() {
	r.t.Helper()
	if !r.started {
		r.t.Fatalf("%s.Restart before Start", r.name)
	}
	if err := r.prog.Start(); err != nil {
		r.fail("restart", err)
	}
}

func (r *serverRun) fail(what string, err error) {
	r.t.Helper()
	r.prog.Stop()
	r.logShown = true
	r.t.Fatalf("failed to %s %s: %v\nlog tail:\n%s", what, r.name, err, r.prog.LogTail(30))
}

// Stop ends the homeserver (SIGTERM, then SIGKILL after a few seconds). It is safe to
// call more than once and runs by itself at the end of the test.
func (r *serverRun) Stop() { r.prog.Stop() }

// Running reports whether the homeserver process is running.
func (r *serverRun) Running() bool { return r.prog.Running() }

// CreateUser registers localpart with the shared secret and returns its user ID.
func (r *serverRun) CreateUser(t testing.TB, localpart, password string) string {
	t.Helper()
	userID, err := r.prog.CreateUser(localpart, password)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return userID
}

// StartHomeservers starts homeservers made here (Dendrite, Synapse; without appservice
// registrations) side by side, which saves a few seconds per server on a busy machine.
// It fails the test when any of them does not start.
func StartHomeservers(t testing.TB, servers ...Homeserver) {
	t.Helper()
	type starter interface {
		start(registrationPaths []string) error
		fail(what string, err error)
	}
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, hs := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = hs.(starter).start(nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			servers[i].(starter).fail("start", err)
		}
	}
}
