package testenv

import (
	"path/filepath"
	"testing"

	"github.com/carebridge/carebridge/internal/dendrite"
)

// Dendrite is a throw-away Dendrite homeserver on 127.0.0.1 with its own folder,
// SQLite databases and signing key. Presence, open registration and rate limits are
// off, and so is federation unless made by NewFederatedDendrite. NewDendrite only
// reserves a port, so that an appservice registration naming the homeserver URL can be
// written before Start.
type Dendrite struct {
	serverRun
	srv          *dendrite.Server
	sharedSecret string
}

// DendriteBinDir returns the folder holding the Dendrite binaries ($CAREBRIDGE_DENDRITE_BIN,
// or installed by scripts/install-dendrite.sh on first use).
func DendriteBinDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return dendrite.BinDir(root)
}

// NewDendrite prepares a homeserver for the test; it is stopped by t.Cleanup. The test
// is skipped (failed in CI) when no Dendrite build can be found or installed.
func NewDendrite(t testing.TB) *Dendrite {
	t.Helper()
	binDir, err := DendriteBinDir()
	RequireDep(t, DepDendrite, err)
	d := &Dendrite{srv: &dendrite.Server{BinDir: binDir, Dir: t.TempDir(), Port: FreePort(t), ServerName: "localhost"}}
	d.serverRun = serverRun{t: t, name: "Dendrite", prog: d.srv, logPath: d.LogPath}
	t.Cleanup(d.cleanup)
	return d
}

// URL is the client-server API base, http://127.0.0.1:PORT.
func (d *Dendrite) URL() string { return d.srv.URL() }

// ServerName is the homeserver's domain, the part after the colon in user IDs.
func (d *Dendrite) ServerName() string { return d.srv.ServerName }

// Port is the loopback port the homeserver listens on.
func (d *Dendrite) Port() int { return d.srv.Port }

// Dir is the homeserver's folder: config, key, databases and logs.
func (d *Dendrite) Dir() string { return d.srv.Dir }

// ConfigPath is the dendrite.yaml written by Start.
func (d *Dendrite) ConfigPath() string { return d.srv.ConfigPath() }

// LogPath is Dendrite's own log file (level info).
func (d *Dendrite) LogPath() string { return filepath.Join(d.srv.Dir, "log", "dendrite.log") }

// RegistrationSharedSecret is the secret for /_synapse/admin/v1/register, set by Start.
func (d *Dendrite) RegistrationSharedSecret() string { return d.sharedSecret }

// Start writes the config, with the given appservice registration files, and runs the
// homeserver until /_matrix/client/versions answers. It fails the test after 60 s.
func (d *Dendrite) Start(registrationPaths ...string) {
	d.t.Helper()
	if err := d.start(registrationPaths); err != nil {
		d.fail("start", err)
	}
}

// start does Start's work without failing the test, so that it can run off the test's
// goroutine.
func (d *Dendrite) start(registrationPaths []string) error {
	secret, err := d.srv.WriteConfig(registrationPaths, false)
	if err == nil {
		d.sharedSecret = secret
		err = d.srv.Start()
	}
	d.started = true
	return err
}

// StartDendrites starts homeservers (without appservice registrations) side by side,
// which saves a few seconds per server on a busy machine. It fails the test when any
// of them does not start.
func StartDendrites(t testing.TB, servers ...*Dendrite) {
	t.Helper()
	hs := make([]Homeserver, len(servers))
	for i, d := range servers {
		hs[i] = d
	}
	StartHomeservers(t, hs...)
}
