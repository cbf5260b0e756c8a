// Package synapse runs the Synapse homeserver that carebridge's tests and demo use beside
// Dendrite: it finds (installing once, from PyPI) the pinned version, writes a closed,
// local config, starts and stops the server, and creates accounts.
package synapse

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/carebridge/carebridge/internal/localserver"
)

const (
	// Synapse takes about 2 s to answer on a quiet machine (1.5 s on a database it made before).
	startTimeout = 90 * time.Second
	stopTimeout  = 10 * time.Second
)

var (
	venvOnce sync.Once
	venvDir  string
	venvErr  error
)

// Venv returns the virtualenv holding Synapse: $CAREBRIDGE_SYNAPSE_VENV when set, else
// what repoRoot/scripts/install-synapse.sh prints (installing on first use). The answer
// is cached for the process.
func Venv(repoRoot string) (string, error) {
	venvOnce.Do(func() { venvDir, venvErr = findVenv(repoRoot) })
	return venvDir, venvErr
}

func findVenv(repoRoot string) (string, error) {
	if dir := os.Getenv("CAREBRIDGE_SYNAPSE_VENV"); dir != "" {
		return dir, checkVenv(dir)
	}
	return localserver.Install(repoRoot, "install-synapse.sh", checkVenv)
}

func checkVenv(dir string) error {
	info, err := os.Stat(filepath.Join(dir, "bin", "python"))
	if err != nil {
		return fmt.Errorf("synapse virtualenv missing: %w", err)
	}
	if info.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", filepath.Join(dir, "bin", "python"))
	}
	return nil
}

// Server is one Synapse in a folder of its own (config, signing key, SQLite database
// unless PostgresURI, media, log), its client API on 127.0.0.1:Port.
type Server struct {
	Venv       string
	Dir        string
	Port       int
	ServerName string
	// PostgresURI, when set, is the PostgreSQL database Synapse keeps its data in
	// (postgres://user[:password]@host:port/dbname) instead of SQLite in Dir. Synapse
	// refuses a database whose collation is not C: create it with
	// ENCODING 'UTF8' LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0.
	PostgresURI string
	// FederationAddr, when set (HOST:PORT on loopback), turns federation on: the server
	// also serves the federation API over HTTPS there (self-signed), and ServerName
	// should be the same HOST:PORT, so that other servers find it without DNS.
	FederationAddr string
	// Experimental names further experimental_features to turn on (true) beside the two
	// every test gets (MSC3202, MSC2409), e.g. "msc3814_enabled" for dehydrated devices.
	// Tests that do not ask keep the server as it was.
	Experimental []string

	proc   localserver.Process
	secret string
}

// URL is the client-server API base.
func (s *Server) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.Port) }

// ConfigPath is the server's homeserver.yaml.
func (s *Server) ConfigPath() string { return filepath.Join(s.Dir, "homeserver.yaml") }

// LogPath is Synapse's own log (level INFO).
func (s *Server) LogPath() string { return filepath.Join(s.Dir, "homeserver.log") }

// OutputPath holds the process's stdout and stderr (start-up errors, tracebacks).
func (s *Server) OutputPath() string { return filepath.Join(s.Dir, "synapse.out") }

func (s *Server) signingKeyPath() string { return filepath.Join(s.Dir, "signing.key") }

// WriteConfig writes the signing key (unless present), a log config and homeserver.yaml:
// SQLite (or PostgresURI's database), no federation listener, no open registration, no
// presence, rate limits out of the way, and the appservice registrations. It returns the
// registration shared secret.
//
// What differs from Dendrite (FIELD-NOTES):
//   - Synapse's rate limits are many (rc_*), each per user or per address, and do not
//     turn off with one switch: each is set far above what a test does. Appservice users
//     are exempt already (the registration's rate_limited: false).
//   - Synapse speaks current spec versions: the bridge starts without
//     --ignore-unsupported-server.
//   - Media: Synapse serves new media only through the authenticated endpoints
//     (/_matrix/client/v1/media, enable_authenticated_media, the default); mautrix uses them.
//   - Rooms are version 12 by default (room IDs without a server name; the creator is
//     outside the power levels); Dendrite 0.13.8 makes version 10.
//   - An invite's member event carries the invitee's display name (Dendrite's does not),
//     so names the bridge reads from the room show earlier.
//   - Accounts: the shared-secret admin API, as Dendrite's create-account uses.
//   - Appservice encryption: MSC3202's transaction extensions and MSC2409's to-device
//     messages are still experimental_features (turned on here, unused until the bridge's
//     encryption.appservice is); device masquerading (device_id on appservice requests) is
//     no longer behind a flag in 1.163, and MSC4190 is chosen per registration
//     (io.element.msc4190 in registration.yaml), not in experimental_features.
func (s *Server) WriteConfig(registrationPaths []string) (sharedSecret string, err error) {
	if err = os.MkdirAll(filepath.Join(s.Dir, "media"), 0o700); err != nil {
		return "", fmt.Errorf("failed to create synapse folder: %w", err)
	}
	if _, err = os.Stat(s.signingKeyPath()); errors.Is(err, os.ErrNotExist) {
		if err = writeSigningKey(s.signingKeyPath()); err != nil {
			return "", err
		}
	}
	regs := make([]string, 0, len(registrationPaths))
	for _, p := range registrationPaths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("bad registration path %q: %w", p, err)
		}
		regs = append(regs, abs)
	}
	logConfig := filepath.Join(s.Dir, "log.yaml")
	if err = writeYAML(logConfig, map[string]any{
		"version":    1,
		"formatters": map[string]any{"precise": map[string]any{"format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"}},
		"handlers": map[string]any{"file": map[string]any{
			"class": "logging.FileHandler", "formatter": "precise", "filename": s.LogPath(),
		}},
		"root":                     map[string]any{"level": "INFO", "handlers": []string{"file"}},
		"disable_existing_loggers": false,
	}); err != nil {
		return "", err
	}
	secrets, err := s.secrets()
	if err != nil {
		return "", err
	}
	s.secret = secrets.Shared
	database, err := s.databaseConfig()
	if err != nil {
		return "", err
	}
	unlimited := map[string]any{"per_second": 10000, "burst_count": 100000}
	experimental := map[string]any{
		"msc3202_transaction_extensions":     true,
		"msc2409_to_device_messages_enabled": true,
	}
	for _, f := range s.Experimental {
		experimental[f] = true
	}
	cfg := map[string]any{
		"server_name": s.ServerName,
		"pid_file":    filepath.Join(s.Dir, "homeserver.pid"),
		"listeners": []any{map[string]any{
			"port": s.Port, "bind_addresses": []string{"127.0.0.1"}, "type": "http", "tls": false, "x_forwarded": false,
			"resources": []any{map[string]any{"names": []string{"client"}, "compress": false}},
		}},
		"database":                    database,
		"log_config":                  logConfig,
		"media_store_path":            filepath.Join(s.Dir, "media"),
		"signing_key_path":            s.signingKeyPath(),
		"registration_shared_secret":  s.secret,
		"macaroon_secret_key":         secrets.Macaroon,
		"form_secret":                 secrets.Form,
		"enable_registration":         false,
		"app_service_config_files":    regs,
		"report_stats":                false,
		"enable_metrics":              false,
		"trusted_key_servers":         []any{},
		"suppress_key_server_warning": true,
		// No other server is ever reached (the tests run without a network), unless
		// FederationAddr (configureFederation).
		"federation_domain_whitelist": []any{},
		"presence":                    map[string]any{"enabled": false},
		"bcrypt_rounds":               4,
		"rc_message":                  unlimited,
		"rc_registration":             unlimited,
		"rc_login":                    map[string]any{"address": unlimited, "account": unlimited, "failed_attempts": unlimited},
		"rc_admin_redaction":          unlimited,
		"rc_joins":                    map[string]any{"local": unlimited, "remote": unlimited},
		"rc_joins_per_room":           unlimited,
		"rc_invites":                  map[string]any{"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
		"rc_3pid_validation":          unlimited,
		"rc_key_requests":             unlimited,
		"rc_media_create":             unlimited,
		"rc_room_creation":            unlimited,
		"rc_delayed_event_mgmt":       unlimited,
		"rc_reports":                  unlimited,
		"rc_profile":                  unlimited,
		"rc_user_directory":           unlimited,
		"rc_third_party_invite":       unlimited,
		"experimental_features":       experimental,
	}
	if s.FederationAddr != "" {
		if err = s.configureFederation(cfg); err != nil {
			return "", err
		}
	}
	if err = writeYAML(s.ConfigPath(), cfg); err != nil {
		return "", err
	}
	return s.secret, nil
}

// databaseConfig is homeserver.yaml's database section: psycopg2 with the parts of
// PostgresURI when it is set, else SQLite in Dir.
func (s *Server) databaseConfig() (map[string]any, error) {
	if s.PostgresURI == "" {
		return map[string]any{"name": "sqlite3", "args": map[string]any{
			"database": filepath.Join(s.Dir, "homeserver.db"),
		}}, nil
	}
	u, err := url.Parse(s.PostgresURI)
	if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" || u.Hostname() == "" {
		return nil, fmt.Errorf("synapse: PostgresURI is not a postgres://user@host:port/dbname URI")
	}
	args := map[string]any{
		"user": u.User.Username(), "dbname": strings.TrimPrefix(u.Path, "/"), "host": u.Hostname(),
		// A test's Synapse does little at once; the cluster's connections are shared.
		"cp_min": 1, "cp_max": 5,
	}
	if port := u.Port(); port != "" {
		args["port"] = port
	}
	if password, ok := u.User.Password(); ok {
		args["password"] = password
	}
	if mode := u.Query().Get("sslmode"); mode != "" {
		args["sslmode"] = mode
	}
	return map[string]any{"name": "psycopg2", "args": args}, nil
}

// writeSigningKey writes a new ed25519 key in Synapse's format ("ed25519 <key id> <seed>",
// unpadded base64), as generate_signing_key would, without the second of Python it takes.
func writeSigningKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	line := "ed25519 a_" + randomHex(2) + " " + base64.RawStdEncoding.EncodeToString(priv.Seed()) + "\n"
	if err = os.WriteFile(path, []byte(line), 0o600); err != nil {
		return fmt.Errorf("failed to write synapse signing key: %w", err)
	}
	return nil
}

func writeYAML(path string, v any) error {
	out, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("failed to encode %s: %w", filepath.Base(path), err)
	}
	if err = os.WriteFile(path, out, 0o600); err != nil {
		return fmt.Errorf("failed to write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// Start runs the server and waits until /_matrix/client/versions answers, and with
// federation on, until the HTTPS listener serves the server's signing keys.
func (s *Server) Start() error {
	cmd := exec.Command(filepath.Join(s.Venv, "bin", "python"), "-m", "synapse.app.homeserver", "-c", s.ConfigPath())
	cmd.Dir = s.Dir
	s.proc.Name = "synapse"
	if err := s.proc.Start(cmd, s.OutputPath()); err != nil {
		return err
	}
	return s.proc.WaitHomeserver(startTimeout, s.URL(), s.FederationURL())
}

// Stop ends the server's process group: SIGTERM, then SIGKILL after 10 s. The server can
// be started again afterwards. Safe to call when not running.
func (s *Server) Stop() { s.proc.Stop(stopTimeout) }

// Running reports whether the server process is running.
func (s *Server) Running() bool { return s.proc.Running() }

// ErrUserExists is returned by CreateUser for a taken localpart.
var ErrUserExists = errors.New("user already exists")

// CreateUser registers localpart with the shared secret (Synapse's admin register API,
// through mautrix's synapseadmin) and returns its user ID. WriteConfig must have run, in
// this process or (for the demo) in an earlier one whose config is on disk.
func (s *Server) CreateUser(localpart, password string) (string, error) {
	secret, err := s.sharedSecret()
	if err != nil {
		return "", err
	}
	client, err := mautrix.NewClient(s.URL(), "", "")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := synapseadmin.Client{Client: client}
	resp, err := admin.SharedSecretRegister(ctx, secret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart, Password: password, InhibitLogin: true,
	})
	userID := "@" + localpart + ":" + s.ServerName
	switch {
	case errors.Is(err, mautrix.MUserInUse):
		return userID, ErrUserExists
	case err != nil:
		return "", fmt.Errorf("failed to create Matrix user %s: %w", localpart, err)
	}
	return resp.UserID.String(), nil
}

func (s *Server) sharedSecret() (string, error) {
	if s.secret != "" {
		return s.secret, nil
	}
	secrets, err := s.secrets()
	if err != nil {
		return "", err
	}
	s.secret = secrets.Shared
	return s.secret, nil
}

type configSecrets struct {
	Shared   string `yaml:"registration_shared_secret"`
	Macaroon string `yaml:"macaroon_secret_key"`
	Form     string `yaml:"form_secret"`
}

// secrets are those of the config on disk, so that a config written again (the demo's
// next run) keeps them; new ones when there is none.
func (s *Server) secrets() (configSecrets, error) {
	raw, err := os.ReadFile(s.ConfigPath())
	if errors.Is(err, os.ErrNotExist) {
		return configSecrets{Shared: randomHex(16), Macaroon: randomHex(32), Form: randomHex(32)}, nil
	} else if err != nil {
		return configSecrets{}, fmt.Errorf("failed to read synapse config: %w", err)
	}
	var cfg configSecrets
	if err = yaml.Unmarshal(raw, &cfg); err != nil || cfg.Shared == "" || cfg.Macaroon == "" || cfg.Form == "" {
		return configSecrets{}, fmt.Errorf("secrets missing in %s (%v): delete it to start afresh", s.ConfigPath(), err)
	}
	return cfg, nil
}

// LogTail returns the last n lines of the process's output, or of its log when the
// output is empty (the usual case: Synapse logs to its file).
func (s *Server) LogTail(n int) string {
	if data, err := os.ReadFile(s.OutputPath()); err == nil && len(bytes.TrimSpace(data)) > 0 {
		return localserver.LastLines(string(data), n)
	}
	data, _ := os.ReadFile(s.LogPath())
	return localserver.LastLines(string(data), n)
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}
