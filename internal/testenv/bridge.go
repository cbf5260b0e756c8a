package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carebridge/carebridge/internal/dendrite"
	"gopkg.in/yaml.v3"
)

// DepBridgeBuild names the carebridge binary build for RequireDep.
const DepBridgeBuild = "carebridge binary"

func init() {
	installHints[DepBridgeBuild] = "run `make build` (needs gcc for cgo) or set CAREBRIDGE_BIN"
}

var (
	bridgeBuildsMu sync.Mutex
	bridgeBuilds   = map[string]string{}
)

// BridgeBinary returns the carebridge binary under test: CAREBRIDGE_BIN (set by `make
// test` to the freshly built bin/carebridge), or one built here with cgo and -tags goolm.
func BridgeBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CAREBRIDGE_BIN"); p != "" {
		_, err := os.Stat(p)
		RequireDep(t, DepBridgeBuild, err)
		return p
	}
	return BuildBridge(t, "goolm")
}

// BuildBridge builds carebridge with the given build tags (once per test process).
func BuildBridge(t testing.TB, tags string) string {
	t.Helper()
	bridgeBuildsMu.Lock()
	defer bridgeBuildsMu.Unlock()
	if path, ok := bridgeBuilds[tags]; ok {
		return path
	}
	root, err := RepoRoot()
	RequireDep(t, DepBridgeBuild, err)
	out := filepath.Join(os.TempDir(), fmt.Sprintf("carebridge-test-%d", os.Getpid()), strings.ReplaceAll(tags, ",", "-"), "carebridge")
	cmd := exec.Command("go", "build", "-tags", tags, "-o", out, "./cmd/carebridge")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=-buildvcs=false")
	if output, err := cmd.CombinedOutput(); err != nil {
		RequireDep(t, DepBridgeBuild, fmt.Errorf("go build -tags %s failed: %w\n%s", tags, err, output))
	}
	bridgeBuilds[tags] = out
	return out
}

// BridgeOptions configures a carebridge under test.
type BridgeOptions struct {
	Homeserver   Homeserver
	DB           DBSpec
	TwilioAPIURL string
	StaffInvites []string
	// Binary replaces the binary under test (e.g. one from BuildBridge with other tags).
	Binary string
	// MovableClock runs a binary built with the testclock tag (BuildBridge, once per test
	// process, unless Binary is given) whose clock SetClock moves. Production builds
	// refuse to start with a clock file.
	MovableClock bool
	// MinimalEdits edits only what a new user must (homeserver address and domain, and
	// permissions), keeping every other default of the generated example.
	MinimalEdits bool
	// Edit changes the generated config (a YAML map) before the registration is made.
	Edit func(cfg map[string]any)
}

// Bridge is a carebridge process under test, configured from its own `-e` example.
type Bridge struct {
	t                  testing.TB
	bin                string
	dir                string
	movableClock       bool
	onDendrite         bool // started with --ignore-unsupported-server
	port               int
	ProvisioningSecret string
	RegistrationPath   string
	cmd                *exec.Cmd
	exited             chan struct{}
	exitErr            error
}

// NewBridge writes a config (from `carebridge -e`) and the appservice registration (`-g`).
// Start the homeserver with RegistrationPath, then call Start.
func NewBridge(t testing.TB, opts BridgeOptions) *Bridge {
	t.Helper()
	b := &Bridge{t: t, bin: opts.Binary, dir: t.TempDir(), movableClock: opts.MovableClock,
		onDendrite: opts.Homeserver.Kind() == HomeserverDendrite}
	switch {
	case b.bin != "":
	case opts.MovableClock:
		b.bin = BuildBridge(t, "goolm,testclock")
	default:
		b.bin = BridgeBinary(t)
	}
	b.ProvisioningSecret = randomHex(16)
	b.RegistrationPath = filepath.Join(b.dir, "registration.yaml")
	b.run("-e", "-c", b.ConfigPath())

	raw, err := os.ReadFile(b.ConfigPath())
	if err != nil {
		t.Fatalf("failed to read generated config: %v", err)
	}
	var cfg map[string]any
	if err = yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("failed to parse generated config: %v", err)
	}
	set := func(value any, path ...string) {
		if err := dendrite.SetYAMLPath(cfg, path, value); err != nil {
			t.Fatalf("failed to edit config: %v", err)
		}
	}
	set(opts.Homeserver.URL(), "homeserver", "address")
	set(opts.Homeserver.ServerName(), "homeserver", "domain")
	set(map[string]any{opts.Homeserver.ServerName(): "user", "@admin:" + opts.Homeserver.ServerName(): "admin"}, "bridge", "permissions")
	if opts.MinimalEdits {
		b.port = yamlInt(cfg, "appservice", "port")
	} else {
		b.port = FreePort(t)
		b.applyTestConfig(set, opts)
	}
	if opts.Edit != nil {
		opts.Edit(cfg)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("failed to write config: %v", err)
	}
	if err = os.WriteFile(b.ConfigPath(), out, 0o600); err != nil {
		t.Fatalf("failed to write config: %v", err)
	}
	b.run("-g", "-c", b.ConfigPath(), "-r", b.RegistrationPath)
	return b
}

// applyTestConfig points the bridge at the test's ports, database and fake Twilio, and
// logs JSON to stdout so tests can read the log.
func (b *Bridge) applyTestConfig(set func(value any, path ...string), opts BridgeOptions) {
	set(b.URL(), "appservice", "address")
	set(b.URL(), "appservice", "public_address")
	set("127.0.0.1", "appservice", "hostname")
	set(b.port, "appservice", "port")
	// Dendrite does not push receipts and typing to appservices: the bridge reads them
	// through its bot's /sync. Synapse pushes them (and, with appservice encryption, the
	// bot's to-device messages, which a /sync as the bot's device would take away).
	set(opts.Homeserver.Kind() != HomeserverDendrite, "appservice", "ephemeral_events")
	set(opts.DB.Type, "database", "type")
	set(opts.DB.URI, "database", "uri")
	set(b.ProvisioningSecret, "provisioning", "shared_secret")
	set(opts.TwilioAPIURL, "network", "twilio", "api_url")
	set(opts.StaffInvites, "network", "staff_invites")
	set("1s", "network", "inbound", "retry_interval")
	set("5s", "network", "inbound", "max_retry_interval")
	set(map[string]any{
		"min_level": "debug",
		"writers":   []any{map[string]any{"type": "stdout", "format": "json"}},
	}, "logging")
}

func yamlInt(cfg map[string]any, path ...string) int {
	var cur any = cfg
	for _, key := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0
		}
		cur = m[key]
	}
	n, _ := cur.(int)
	return n
}

// Command prepares the bridge binary with the given arguments, run in the bridge's folder.
func (b *Bridge) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(b.bin, args...)
	cmd.Dir = b.dir
	return cmd
}

func (b *Bridge) run(args ...string) {
	b.t.Helper()
	cmd := exec.Command(b.bin, args...)
	cmd.Dir = b.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.t.Fatalf("carebridge %v failed: %v\n%s", args, err, out)
	}
}

// ConfigPath is the bridge's config file.
func (b *Bridge) ConfigPath() string { return filepath.Join(b.dir, "config.yaml") }

// LogPath is the bridge's log (JSON lines from stdout and stderr).
func (b *Bridge) LogPath() string { return filepath.Join(b.dir, "bridge.log") }

// URL is where the bridge listens (appservice and public address).
func (b *Bridge) URL() string { return "http://127.0.0.1:" + strconv.Itoa(b.port) }

// InboundURL is a clinic number's Twilio webhook.
func (b *Bridge) InboundURL(loginID string) string {
	return b.URL() + "/_carebridge/twilio/" + loginID + "/inbound"
}

// Start runs the bridge (on Dendrite with --ignore-unsupported-server: Dendrite speaks
// spec v1.2, bridgev2 wants v1.4; Synapse needs nothing) and waits until its Twilio routes answer.
func (b *Bridge) Start() {
	b.t.Helper()
	b.Launch()
	b.waitReady()
}

func (b *Bridge) clockPath() string { return filepath.Join(b.dir, "clock-offset") }

// SetClock moves the bridge's clock (business hours, scheduled messages, response times,
// alerts) to real time plus offset, at once and across restarts; tests never sleep for it.
// The bridge must have been made with BridgeOptions.MovableClock.
func (b *Bridge) SetClock(offset time.Duration) {
	b.t.Helper()
	if !b.movableClock {
		b.t.Fatalf("SetClock needs a bridge made with BridgeOptions{MovableClock: true} (a testclock build)")
	}
	if err := os.WriteFile(b.clockPath(), []byte(offset.String()), 0o600); err != nil {
		b.t.Fatalf("failed to set the bridge clock: %v", err)
	}
}

// launch starts the process, appending to the log; Start and Restart share it.
func (b *Bridge) launch() {
	b.t.Helper()
	logFile, err := os.OpenFile(b.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.t.Fatalf("failed to open bridge log: %v", err)
	}
	args := []string{"-c", b.ConfigPath(), "-n"}
	if b.onDendrite {
		args = append(args, "--ignore-unsupported-server")
	}
	cmd := exec.Command(b.bin, args...)
	cmd.Dir = b.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = os.Environ()
	if b.movableClock {
		// The testclock build's clock reads its offset from here (SetClock); absent, it is real time.
		cmd.Env = append(cmd.Env, "CAREBRIDGE_TEST_CLOCK_FILE="+b.clockPath())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err = cmd.Start(); err != nil {
		b.t.Fatalf("failed to start carebridge: %v", err)
	}
	exited := make(chan struct{})
	b.cmd, b.exited = cmd, exited
	go func() {
		b.exitErr = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
}

// WaitReady waits until a bridge that was Launched has started (a standby: until it took
// over), failing the test after 60 s.
func (b *Bridge) WaitReady() { b.t.Helper(); b.waitReady() }

// waitReady waits until the webhook route answers, failing the test after 60 s.
func (b *Bridge) waitReady() {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-b.exited:
			b.t.Fatalf("carebridge exited during start-up: %v\n%s", b.exitErr, tailFile(b.LogPath(), 30))
		default:
		}
		// The webhook route answers 405 to GET once the network connector has started.
		resp, err := http.Get(b.InboundURL("0"))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusMethodNotAllowed {
				return
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("carebridge did not become ready in 60 s\n%s", tailFile(b.LogPath(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the bridge gracefully (SIGTERM), then forcefully after 10 s.
func (b *Bridge) Stop() {
	if !b.terminate(syscall.SIGTERM, 10*time.Second) {
		b.terminate(syscall.SIGKILL, time.Hour)
	}
}

// terminate sends sig to the bridge's process group and reports whether it exited
// within timeout (true as well when it was not running).
func (b *Bridge) terminate(sig syscall.Signal, timeout time.Duration) bool {
	if b.cmd == nil || b.cmd.Process == nil {
		return true
	}
	select {
	case <-b.exited:
		return true
	default:
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, sig)
	select {
	case <-b.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Log returns everything the bridge logged so far.
func (b *Bridge) Log() string {
	data, _ := os.ReadFile(b.LogPath())
	return string(data)
}

// Provision calls the bridge's provisioning API as userID and decodes the JSON answer.
func (b *Bridge) Provision(ctx context.Context, method, path, userID string, body, out any) (int, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		reader = bytes.NewReader(data)
	}
	u := b.URL() + "/_matrix/provision" + path + "?user_id=" + url.QueryEscape(userID)
	req, err := http.NewRequestWithContext(ctx, method, u, reader)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.ProvisioningSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(data) > 0 {
		if err = json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("failed to decode %s: %w", data, err)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("provisioning %s %s: HTTP %d: %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, nil
}

// LinkNumber runs the auth-token login flow through the provisioning API, as a clinic's
// IT person would from a client, and returns the new login's ID.
func (b *Bridge) LinkNumber(ctx context.Context, userID, accountSID, authToken, phone string) (string, error) {
	var start struct {
		LoginID string `json:"login_id"`
		StepID  string `json:"step_id"`
		Type    string `json:"type"`
	}
	if _, err := b.Provision(ctx, http.MethodPost, "/v3/login/start/auth-token", userID, nil, &start); err != nil {
		return "", err
	}
	if start.Type != "user_input" {
		return "", fmt.Errorf("login started with step type %q, expected user_input", start.Type)
	}
	var done struct {
		Type     string `json:"type"`
		Complete struct {
			UserLoginID string `json:"user_login_id"`
		} `json:"complete"`
	}
	_, err := b.Provision(ctx, http.MethodPost, "/v3/login/step/"+start.LoginID+"/"+start.StepID+"/user_input", userID,
		map[string]string{"account_sid": accountSID, "auth_token": authToken, "phone_number": phone}, &done)
	if err != nil {
		return "", err
	}
	if done.Type != "complete" {
		return "", fmt.Errorf("login ended with step type %q, expected complete", done.Type)
	}
	return done.Complete.UserLoginID, nil
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}
