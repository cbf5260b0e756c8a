package testenv

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/carebridge/carebridge/internal/synapse"
)

// DepSynapse names Synapse for RequireDep.
const DepSynapse = "Synapse"

func init() {
	installHints[DepSynapse] = "run scripts/install-synapse.sh (needs python3 >= 3.10 and PyPI) or point " +
		"CAREBRIDGE_SYNAPSE_VENV at a virtualenv with matrix-synapse installed"
}

// Synapse is a throw-away Synapse homeserver on 127.0.0.1 with its own folder, database
// (SQLite, or PostgreSQL: NewSynapseOn) and signing key; registration, presence, federation and rate limits are off
// (synapse.Server.WriteConfig). It starts in about 2 s on a quiet machine (Dendrite: 1 s),
// so each test has its own, as with Dendrite: the appservice registration is part of the
// config, and every test's bridge has its own.
type Synapse struct {
	serverRun
	srv    *synapse.Server
	secret string
}

// SynapseVenv returns the virtualenv holding Synapse ($CAREBRIDGE_SYNAPSE_VENV, or made
// by scripts/install-synapse.sh on first use).
func SynapseVenv() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return synapse.Venv(root)
}

// NewSynapse prepares a homeserver on SQLite for the test; it is stopped by t.Cleanup.
// The test is skipped (failed under make test and in CI) when Synapse cannot be found or
// installed.
func NewSynapse(t testing.TB) *Synapse {
	t.Helper()
	return NewSynapseOn(t, "sqlite")
}

// NewSynapseOn is NewSynapse on a database of the given kind (one of DatabaseKinds): on
// "postgres", a database of its own on the test cluster (C collation, as Synapse
// requires), dropped when the test ends — as a clinic running the bridge on PostgreSQL
// runs Synapse on it too.
func NewSynapseOn(t testing.TB, dbKind string) *Synapse {
	t.Helper()
	venv, err := SynapseVenv()
	RequireDep(t, DepSynapse, err)
	srv := &synapse.Server{Venv: venv, Dir: t.TempDir(), Port: FreePort(t), ServerName: "localhost"}
	if dbKind == "postgres" {
		srv.PostgresURI = newPostgresDB(t, "synapse_test_", synapsePostgresOptions)
	}
	s := &Synapse{srv: srv}
	s.serverRun = serverRun{t: t, name: "Synapse", prog: s.srv, logPath: s.LogPath}
	t.Cleanup(s.cleanup)
	return s
}

// synapsePostgresOptions are the CREATE DATABASE options Synapse requires (it refuses
// another collation: docs/postgres.md in Synapse's source).
const synapsePostgresOptions = "ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0"

// Kind is HomeserverSynapse.
func (s *Synapse) Kind() string { return HomeserverSynapse }

// URL is the client-server API base, http://127.0.0.1:PORT.
func (s *Synapse) URL() string { return s.srv.URL() }

// ServerName is the homeserver's domain.
func (s *Synapse) ServerName() string { return s.srv.ServerName }

// Dir is the homeserver's folder: config, key, database and logs.
func (s *Synapse) Dir() string { return s.srv.Dir }

// LogPath is Synapse's own log file (level INFO).
func (s *Synapse) LogPath() string { return s.srv.LogPath() }

// RegistrationSharedSecret is the secret for /_synapse/admin/v1/register, set by Start.
func (s *Synapse) RegistrationSharedSecret() string { return s.secret }

// Start writes the config, with the given appservice registration files, and runs the
// homeserver until /_matrix/client/versions answers.
func (s *Synapse) Start(registrationPaths ...string) {
	s.t.Helper()
	if err := s.start(registrationPaths); err != nil {
		s.fail("start", err)
	}
}

// start does Start's work without failing the test (StartHomeservers).
func (s *Synapse) start(registrationPaths []string) error {
	secret, err := s.srv.WriteConfig(registrationPaths)
	if err == nil {
		s.secret = secret
		err = s.srv.Start()
	}
	s.started = true
	return err
}

// EnableExperimental turns on further Synapse experimental_features (each set to true) for
// this server, before Start: e.g. "msc3814_enabled" (MSC3814 dehydrated devices), which
// the e2ee spike's tests ask for and no other test does.
func (s *Synapse) EnableExperimental(features ...string) {
	s.srv.Experimental = append(s.srv.Experimental, features...)
}

// Login signs localpart in with a new device and returns a plain mautrix client.
func (s *Synapse) Login(t testing.TB, localpart, password string) *mautrix.Client {
	t.Helper()
	return login(t, s.URL(), s.ServerName(), localpart, password)
}

func login(t testing.TB, hsURL, serverName, localpart, password string) *mautrix.Client {
	t.Helper()
	client, err := mautrix.NewClient(hsURL, "", "")
	if err != nil {
		t.Fatalf("failed to create Matrix client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = client.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:                 password,
		InitialDeviceDisplayName: "carebridge test",
		StoreCredentials:         true,
	})
	if err != nil {
		t.Fatalf("failed to log in as %s on %s: %v", localpart, serverName, err)
	}
	return client
}
