package testenv

import (
	"os"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
)

// The homeservers the end-to-end tests run on, as CAREBRIDGE_TEST_HOMESERVER names them.
const (
	HomeserverDendrite = "dendrite"
	HomeserverSynapse  = "synapse"
)

// Homeserver is a throw-away homeserver on loopback, Dendrite or Synapse, with its own
// folder and databases. New ones only reserve a port, so that the bridge's appservice
// registration naming the homeserver URL can be written before Start.
type Homeserver interface {
	// Kind is HomeserverDendrite or HomeserverSynapse.
	Kind() string
	// URL is the client-server API base, http://127.0.0.1:PORT.
	URL() string
	// ServerName is the part after the colon in user IDs.
	ServerName() string
	// RegistrationSharedSecret is the secret for /_synapse/admin/v1/register, set by Start.
	RegistrationSharedSecret() string
	// LogPath is the homeserver's own log file.
	LogPath() string
	// Start writes the config, with the given appservice registration files, and runs
	// the homeserver until it answers; it fails the test when it does not.
	Start(registrationPaths ...string)
	// Restart runs the homeserver again after Stop with what Start wrote: users, tokens,
	// rooms and devices survive, the transaction IDs it had seen do not.
	Restart()
	// Stop ends the homeserver; it runs by itself at the end of the test.
	Stop()
	// Running reports whether the homeserver process is running.
	Running() bool
	// CreateUser registers localpart with the shared secret and returns its user ID.
	CreateUser(t testing.TB, localpart, password string) string
	// Login signs localpart in with a new device (a plain mautrix client).
	Login(t testing.TB, localpart, password string) *mautrix.Client
}

var (
	_ Homeserver = (*Dendrite)(nil)
	_ Homeserver = (*Synapse)(nil)
)

// Kind is HomeserverDendrite.
func (d *Dendrite) Kind() string { return HomeserverDendrite }

// HomeserverKinds are the homeservers that tests written for both run on:
// CAREBRIDGE_TEST_HOMESERVER=dendrite, synapse or both (the default).
func HomeserverKinds(t testing.TB) []string {
	t.Helper()
	switch v := os.Getenv("CAREBRIDGE_TEST_HOMESERVER"); v {
	case "", "both":
		return []string{HomeserverDendrite, HomeserverSynapse}
	case HomeserverDendrite, HomeserverSynapse:
		return []string{v}
	default:
		t.Fatalf("CAREBRIDGE_TEST_HOMESERVER=%q: want dendrite, synapse or both", v)
		return nil
	}
}

// SynapseDatabaseKinds are the databases tests on Synapse run on, Synapse and the bridge
// on the same kind: CAREBRIDGE_TEST_SYNAPSE_DB=sqlite (the default: the bridge's queries
// are proved on both databases on Dendrite), postgres, or both.
func SynapseDatabaseKinds(t testing.TB) []string {
	t.Helper()
	switch v := os.Getenv("CAREBRIDGE_TEST_SYNAPSE_DB"); v {
	case "", "sqlite":
		return []string{"sqlite"}
	case "postgres":
		return []string{"postgres"}
	case "both":
		return DatabaseKinds
	default:
		t.Fatalf("CAREBRIDGE_TEST_SYNAPSE_DB=%q: want sqlite, postgres or both", v)
		return nil
	}
}

// SplitKind splits a test's kind: a database alone ("sqlite", "postgres") runs on
// Dendrite, as every test did before Synapse; "synapse/sqlite" names both; a homeserver
// alone ("synapse") runs on SQLite.
func SplitKind(kind string) (homeserver, db string) {
	if hs, db, ok := strings.Cut(kind, "/"); ok {
		return hs, db
	}
	if kind == HomeserverDendrite || kind == HomeserverSynapse {
		return kind, "sqlite"
	}
	return HomeserverDendrite, kind
}

// NewHomeserver prepares a homeserver of the kind a test's kind names (SplitKind); it
// is stopped by t.Cleanup. Synapse keeps its data on the test's kind of database (a
// PostgreSQL database of its own beside the bridge's for "synapse/postgres"); Dendrite
// always on SQLite.
func NewHomeserver(t testing.TB, kind string) Homeserver {
	t.Helper()
	switch hs, db := SplitKind(kind); hs {
	case HomeserverDendrite:
		return NewDendrite(t)
	case HomeserverSynapse:
		return NewSynapseOn(t, db)
	default:
		t.Fatalf("unknown homeserver %q in test kind %q", hs, kind)
		return nil
	}
}
