// Package dendrite runs the Dendrite homeserver that carebridge's tests and demo use:
// it finds (installing once) the pinned build, writes a closed, local config, starts and
// stops the server, and creates accounts.
package dendrite

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/carebridge/carebridge/internal/localserver"
)

// Binaries are the programs used, all from one Dendrite build.
var Binaries = []string{"dendrite", "generate-config", "generate-keys", "create-account"}

const (
	startTimeout = 60 * time.Second
	stopTimeout  = 5 * time.Second
)

// BinDir returns the folder holding the Dendrite binaries: $CAREBRIDGE_DENDRITE_BIN when
// set, else what repoRoot/scripts/install-dendrite.sh prints (installing on first use).
// The answer is cached for the process.
func BinDir(repoRoot string) (string, error) { return binDir(repoRoot) }

var binDir = func() func(string) (string, error) {
	var once sync.Once
	var dir string
	var err error
	return func(repoRoot string) (string, error) {
		once.Do(func() {
			if dir = os.Getenv("CAREBRIDGE_DENDRITE_BIN"); dir != "" {
				err = checkBin(dir)
				return
			}
			dir, err = localserver.Install(repoRoot, "install-dendrite.sh", checkBin)
		})
		return dir, err
	}
}()

func checkBin(dir string) error {
	for _, name := range Binaries {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("dendrite binary missing: %w", err)
		}
		if info.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not executable", filepath.Join(dir, name))
		}
	}
	return nil
}

// Server is one Dendrite in a folder of its own, its client API on 127.0.0.1:Port.
type Server struct {
	BinDir     string
	Dir        string
	Port       int
	ServerName string
	// FederationAddr, when set, turns federation on: the server also serves HTTPS, with
	// a self-signed certificate, on this host:port (such as "127.0.0.2:34567", usually
	// the ServerName too) and accepts other servers' self-signed certificates.
	FederationAddr string

	proc localserver.Process
}

// URL is the client-server API base.
func (s *Server) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.Port) }

// ConfigPath is the server's dendrite.yaml.
func (s *Server) ConfigPath() string { return filepath.Join(s.Dir, "dendrite.yaml") }

// OutputPath holds the process's stdout and stderr (everything it logs, and panics).
func (s *Server) OutputPath() string { return filepath.Join(s.Dir, "dendrite.out") }

// WriteConfig writes matrix_key.pem (unless present) and dendrite.yaml: generate-config's
// CI defaults (SQLite, low bcrypt cost) made closed and local (no federation, no
// registration, no presence, no rate limits). With persistent, the message queue is kept
// on disk so the server keeps its state across restarts (the demo). With FederationAddr
// set, federation is on instead, with a certificate written beside the config.
func (s *Server) WriteConfig(registrationPaths []string, persistent bool) (sharedSecret string, err error) {
	if _, err := os.Stat(filepath.Join(s.Dir, "matrix_key.pem")); errors.Is(err, os.ErrNotExist) {
		keys := exec.Command(filepath.Join(s.BinDir, "generate-keys"), "--private-key", "matrix_key.pem")
		keys.Dir = s.Dir
		if out, err := keys.CombinedOutput(); err != nil {
			return "", fmt.Errorf("generate-keys failed: %w: %s", err, out)
		}
	}
	dataDir := filepath.Join(s.Dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("failed to create data folder: %w", err)
	}
	gen := exec.Command(filepath.Join(s.BinDir, "generate-config"), "-ci", "-dir", dataDir, "-server", s.ServerName)
	gen.Dir = s.Dir
	raw, err := gen.Output()
	if err != nil {
		return "", fmt.Errorf("generate-config failed: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return "", fmt.Errorf("failed to parse generated config: %w", err)
	}
	regs := make([]any, 0, len(registrationPaths))
	for _, p := range registrationPaths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("bad registration path %q: %w", p, err)
		}
		regs = append(regs, abs)
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	sharedSecret = hex.EncodeToString(secret)
	settings := []struct {
		path  []string
		value any
	}{
		{[]string{"global", "private_key"}, "matrix_key.pem"},
		{[]string{"global", "disable_federation"}, s.FederationAddr == ""},
		{[]string{"global", "presence", "enable_inbound"}, false},
		{[]string{"global", "presence", "enable_outbound"}, false},
		{[]string{"global", "report_stats", "enabled"}, false},
		{[]string{"global", "jetstream", "storage_path"}, filepath.Join(dataDir, "jetstream")},
		{[]string{"global", "jetstream", "in_memory"}, !persistent},
		{[]string{"app_service_api", "config_files"}, regs},
		{[]string{"client_api", "registration_disabled"}, true},
		{[]string{"client_api", "registration_shared_secret"}, sharedSecret},
		// Dendrite's default rate limits make a few messages in a row fail with M_LIMIT_EXCEEDED.
		{[]string{"client_api", "rate_limiting", "enabled"}, false},
		{[]string{"media_api", "base_path"}, filepath.Join(dataDir, "media")},
		{[]string{"sync_api", "search", "enabled"}, false},
		{[]string{"sync_api", "search", "index_path"}, filepath.Join(dataDir, "searchindex")},
		{[]string{"mscs", "mscs"}, []any{}},
		{[]string{"logging"}, []any{map[string]any{
			"type": "file", "level": "info", "params": map[string]any{"path": filepath.Join(s.Dir, "log")},
		}}},
	}
	for _, set := range settings {
		if err := SetYAMLPath(cfg, set.path, set.value); err != nil {
			return "", err
		}
	}
	if s.FederationAddr != "" {
		if err := s.configureFederation(cfg); err != nil {
			return "", err
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("failed to encode dendrite config: %w", err)
	}
	if err := os.WriteFile(s.ConfigPath(), out, 0o600); err != nil {
		return "", fmt.Errorf("failed to write dendrite config: %w", err)
	}
	return sharedSecret, nil
}

// SetYAMLPath sets cfg[path[0]][path[1]]...=value, creating missing maps.
func SetYAMLPath(cfg map[string]any, path []string, value any) error {
	m := cfg
	for i, key := range path[:len(path)-1] {
		next, ok := m[key]
		if !ok || next == nil {
			created := map[string]any{}
			m[key] = created
			m = created
			continue
		}
		nm, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("config: %v is a %T, not a map", path[:i+1], next)
		}
		m = nm
	}
	m[path[len(path)-1]] = value
	return nil
}

// Start runs the server (from its folder: matrix_key.pem is a relative path) and waits
// until /_matrix/client/versions answers, and with federation on, until the HTTPS
// listener serves the server's signing keys.
func (s *Server) Start() error {
	args := []string{"-config", "dendrite.yaml", "-http-bind-address", "127.0.0.1:" + strconv.Itoa(s.Port)}
	if s.FederationAddr != "" {
		args = append(args, "-https-bind-address", s.FederationAddr, "-tls-cert", localserver.FederationCertFile, "-tls-key", localserver.FederationKeyFile)
	}
	cmd := exec.Command(filepath.Join(s.BinDir, "dendrite"), args...)
	cmd.Dir = s.Dir
	s.proc.Name = "dendrite"
	if err := s.proc.Start(cmd, s.OutputPath()); err != nil {
		return err
	}
	// Dendrite starts the HTTPS listener on its own and only logs when it fails.
	return s.proc.WaitHomeserver(startTimeout, s.URL(), s.FederationURL())
}

// Stop ends the server's process group: SIGTERM, then SIGKILL after 5 s. The server can
// be started again afterwards. Safe to call when not running.
func (s *Server) Stop() { s.proc.Stop(stopTimeout) }

// Running reports whether the server process is running.
func (s *Server) Running() bool { return s.proc.Running() }

// ErrUserExists is returned by CreateUser for a taken localpart.
var ErrUserExists = errors.New("user already exists")

// CreateUser registers localpart with the shared secret and returns its user ID.
func (s *Server) CreateUser(localpart, password string) (string, error) {
	cmd := exec.Command(filepath.Join(s.BinDir, "create-account"),
		"-config", "dendrite.yaml", "-username", localpart, "-password", password, "-url", s.URL())
	cmd.Dir = s.Dir
	userID := "@" + localpart + ":" + s.ServerName
	if out, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "M_USER_IN_USE") || strings.Contains(string(out), "already") {
			return userID, ErrUserExists
		}
		return "", fmt.Errorf("failed to create Matrix user %s: %w: %s", localpart, err, strings.TrimSpace(string(out)))
	}
	return userID, nil
}

// LogTail returns the last n lines the server printed (or logged to its file).
func (s *Server) LogTail(n int) string {
	if data, err := os.ReadFile(s.OutputPath()); err == nil && len(data) > 0 {
		return LastLines(string(data), n)
	}
	data, _ := os.ReadFile(filepath.Join(s.Dir, "log", "dendrite.log"))
	return LastLines(string(data), n)
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string { return localserver.LastLines(s, n) }
