// Command carebridge-demo runs carebridge on this machine with everything local: a
// Dendrite (or, with -homeserver-kind synapse, a Synapse) homeserver, the bridge with the simulated SMS provider, a staff account and the
// clinic number linked. It prints what to open, and stops everything on Ctrl-C. Data stays
// in the data folder for the next run.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/carebridge/carebridge/internal/dendrite"
	"github.com/carebridge/carebridge/internal/synapse"
	"github.com/carebridge/carebridge/internal/twiliosim"
)

// The demo's fixed cast.
const (
	serverName    = "localhost"
	clinicNumber  = "+15550100100"
	staffUser     = "nurse"
	staffPassword = "carebridge-demo"
	adminUser     = "admin"
	adminPassword = "carebridge-demo-admin"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "script" {
		os.Exit(runScript(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "screenshots" {
		os.Exit(runScreenshots(os.Args[2:]))
	}
	dataDir := flag.String("data", "demo-data", "folder for the demo's homeserver, bridge and databases")
	bin := flag.String("bridge", "bin/carebridge", "the carebridge binary")
	hsPort := flag.Int("homeserver-port", 8008, "port of the demo homeserver on 127.0.0.1")
	bridgePort := flag.Int("bridge-port", 29340, "port of the bridge on 127.0.0.1")
	kind := flag.String("homeserver-kind", "dendrite", "the demo homeserver: dendrite or synapse")
	flag.Parse()
	if err := run(*dataDir, *bin, *kind, *hsPort, *bridgePort); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(dataDir, bin, kind string, hsPort, bridgePort int) error {
	if kind != "dendrite" && kind != "synapse" {
		return fmt.Errorf("-homeserver-kind %q: want dendrite or synapse", kind)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	// Dendrite runs from its folder and finds its databases by the paths written in its config.
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return err
	}
	hsDir, bridgeDir := filepath.Join(dataDir, "homeserver"), filepath.Join(dataDir, "bridge")
	for _, dir := range []string{hsDir, bridgeDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	if err = checkKind(dataDir, kind); err != nil {
		return err
	}
	hs, err := newHomeserver(root, kind, hsDir, hsPort)
	if err != nil {
		return err
	}
	bridgeURL := "http://127.0.0.1:" + strconv.Itoa(bridgePort)
	secret, err := configureBridge(bin, bridgeDir, hs.URL(), bridgeURL, bridgePort)
	if err != nil {
		return err
	}
	if err = hs.WriteConfig(filepath.Join(bridgeDir, "registration.yaml")); err != nil {
		return err
	}
	step("Starting the homeserver (" + kind + ") on " + hs.URL())
	if err = hs.Start(); err != nil {
		return fmt.Errorf("%w\n%s", err, hs.LogTail(20))
	}
	defer hs.Stop()
	for _, u := range [][2]string{{adminUser, adminPassword}, {staffUser, staffPassword}} {
		_, err = hs.CreateUser(u[0], u[1])
		if err != nil && !errors.Is(err, dendrite.ErrUserExists) && !errors.Is(err, synapse.ErrUserExists) {
			return err
		}
	}
	step("Starting carebridge on " + bridgeURL)
	// Dendrite speaks spec v1.2 and bridgev2 wants v1.4; Synapse needs no exception.
	bridge, err := startBridge(bin, bridgeDir, bridgeURL, kind == "dendrite")
	if err != nil {
		return err
	}
	defer stopProcess(bridge)
	adminID := "@" + adminUser + ":" + serverName
	if err = linkClinicNumber(bridgeURL, secret, adminID); err != nil {
		return err
	}
	printWelcome(hs.URL(), bridgeURL)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- bridge.Wait() }()
	select {
	case <-stop:
		step("Stopping (data kept in " + dataDir + "; `make demo-reset` clears it)")
	case err = <-exited:
		return fmt.Errorf("carebridge stopped: %v (see %s)", err, filepath.Join(bridgeDir, "bridge.log"))
	}
	return nil
}

func step(msg string) { fmt.Println("==> " + msg) }

// homeserver is the demo's Dendrite or Synapse.
type homeserver interface {
	URL() string
	WriteConfig(registrationPath string) error
	Start() error
	Stop()
	CreateUser(localpart, password string) (string, error)
	LogTail(n int) string
}

// persistentDendrite writes Dendrite's config with its message queue on disk, so that
// the demo's rooms survive a restart.
type persistentDendrite struct{ *dendrite.Server }

func (d persistentDendrite) WriteConfig(registrationPath string) error {
	_, err := d.Server.WriteConfig([]string{registrationPath}, true)
	return err
}

type synapseServer struct{ *synapse.Server }

func (s synapseServer) WriteConfig(registrationPath string) error {
	_, err := s.Server.WriteConfig([]string{registrationPath})
	return err
}

// newHomeserver finds (installing on first use) the homeserver of the kind asked for.
func newHomeserver(root, kind, dir string, port int) (homeserver, error) {
	if kind == "synapse" {
		step("Installing Synapse (first run only, about 1 minute)")
		venv, err := synapse.Venv(root)
		if err != nil {
			return nil, err
		}
		return synapseServer{&synapse.Server{Venv: venv, Dir: dir, Port: port, ServerName: serverName}}, nil
	}
	step("Installing Dendrite (first run only, about 2 minutes)")
	binDir, err := dendrite.BinDir(root)
	if err != nil {
		return nil, err
	}
	return persistentDendrite{&dendrite.Server{BinDir: binDir, Dir: dir, Port: port, ServerName: serverName}}, nil
}

// checkKind records which homeserver a data folder was made with and refuses another:
// the bridge's rooms live on the homeserver that made them.
func checkKind(dataDir, kind string) error {
	path := filepath.Join(dataDir, "homeserver-kind")
	recorded, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		recorded = []byte(kind)
		if entries, _ := os.ReadDir(filepath.Join(dataDir, "homeserver")); len(entries) > 0 {
			recorded = []byte("dendrite") // made before the demo could run Synapse
		}
		err = os.WriteFile(path, recorded, 0o600)
	}
	if err != nil {
		return err
	}
	if string(recorded) != kind {
		return fmt.Errorf("%s holds a demo made with %s, not %s: use another -data folder, or `make demo-reset` to clear it",
			dataDir, recorded, kind)
	}
	return nil
}

// configureBridge writes the bridge's config on first run (the example, with the demo's
// addresses, the simulator and SQLite) and its registration, and returns the
// provisioning secret.
func configureBridge(bin, dir, hsURL, bridgeURL string, port int) (string, error) {
	configPath := filepath.Join(dir, "config.yaml")
	if _, err := os.Stat(configPath); err == nil {
		raw, err := os.ReadFile(configPath)
		if err != nil {
			return "", err
		}
		var cfg struct {
			Provisioning struct {
				SharedSecret string `yaml:"shared_secret"`
			} `yaml:"provisioning"`
		}
		return cfg.Provisioning.SharedSecret, yaml.Unmarshal(raw, &cfg)
	}
	if out, err := runIn(dir, bin, "-e", "-c", "config.yaml"); err != nil {
		return "", fmt.Errorf("carebridge -e failed: %w\n%s", err, out)
	}
	raw, err := os.ReadFile(configPath)
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err = yaml.Unmarshal(raw, &cfg); err != nil {
		return "", err
	}
	secretBytes := make([]byte, 16)
	_, _ = rand.Read(secretBytes)
	secret := hex.EncodeToString(secretBytes)
	for _, set := range []struct {
		path  []string
		value any
	}{
		{[]string{"homeserver", "address"}, hsURL},
		{[]string{"homeserver", "domain"}, serverName},
		{[]string{"appservice", "address"}, bridgeURL},
		{[]string{"appservice", "public_address"}, bridgeURL},
		{[]string{"appservice", "hostname"}, "127.0.0.1"},
		{[]string{"appservice", "port"}, port},
		// Dendrite does not push receipts and typing to appservices: the bridge reads them
		// through its bot's /sync ("Seen by the clinic", "… is typing" in the secure chat).
		{[]string{"appservice", "ephemeral_events"}, false},
		{[]string{"bridge", "permissions"}, map[string]any{serverName: "user", "@" + adminUser + ":" + serverName: "admin"}},
		{[]string{"provisioning", "shared_secret"}, secret},
		{[]string{"network", "provider"}, "simulator"},
		{[]string{"network", "clinic_name"}, "Riverside Family Clinic (demo)"},
		{[]string{"network", "staff_invites"}, []any{"@" + staffUser + ":" + serverName}},
		{[]string{"logging"}, map[string]any{"min_level": "info", "writers": []any{map[string]any{"type": "stdout", "format": "json"}}}},
	} {
		if err = dendrite.SetYAMLPath(cfg, set.path, set.value); err != nil {
			return "", err
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	if err = os.WriteFile(configPath, out, 0o600); err != nil {
		return "", err
	}
	if out, err := runIn(dir, bin, "-g", "-c", "config.yaml", "-r", "registration.yaml"); err != nil {
		return "", fmt.Errorf("carebridge -g failed: %w\n%s", err, out)
	}
	return secret, nil
}

func runIn(dir, bin string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

func startBridge(bin, dir, bridgeURL string, ignoreUnsupportedServer bool) (*exec.Cmd, error) {
	logFile, err := os.OpenFile(filepath.Join(dir, "bridge.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	args := []string{"-c", "config.yaml", "-r", "registration.yaml"}
	if ignoreUnsupportedServer {
		args = append(args, "--ignore-unsupported-server")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err = cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(bridgeURL + "/_carebridge/simulator/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, nil
			}
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	stopProcess(cmd)
	return nil, fmt.Errorf("carebridge did not start; see %s", filepath.Join(dir, "bridge.log"))
}

func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// linkClinicNumber links the demo clinic number through the provisioning API, as IT would
// from a client, unless it is linked already.
func linkClinicNumber(bridgeURL, secret, adminID string) error {
	call := func(method, path string, body any, out any) error {
		var buf bytes.Buffer
		if body != nil {
			_ = json.NewEncoder(&buf).Encode(body)
		}
		req, err := http.NewRequestWithContext(context.Background(), method,
			bridgeURL+"/_matrix/provision"+path+"?user_id="+adminID, &buf)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			var e map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&e)
			return fmt.Errorf("provisioning %s: HTTP %d %v", path, resp.StatusCode, e)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	var logins struct {
		LoginIDs []string `json:"login_ids"`
	}
	if err := call(http.MethodGet, "/v3/logins", nil, &logins); err != nil {
		return err
	}
	if len(logins.LoginIDs) > 0 {
		return nil
	}
	step("Linking the clinic number " + clinicNumber)
	var start struct {
		LoginID string `json:"login_id"`
		StepID  string `json:"step_id"`
	}
	if err := call(http.MethodPost, "/v3/login/start/auth-token", nil, &start); err != nil {
		return err
	}
	var done map[string]any
	return call(http.MethodPost, "/v3/login/step/"+start.LoginID+"/"+start.StepID+"/user_input",
		map[string]string{"account_sid": twiliosim.DemoAccountSID, "auth_token": twiliosim.DemoAuthToken, "phone_number": clinicNumber}, &done)
}

func printWelcome(hsURL, bridgeURL string) {
	fmt.Printf(`
carebridge demo is running. No real SMS is sent.

  Patient's phone (simulated):  %s/_carebridge/simulator/
      Type a patient number such as (555) 123-4567, then text the clinic (%s).
      A number ending in 0000 is never reached: the clinic's texts to it
      are reported undelivered in the room.

  Staff, in Element Desktop (or any Matrix client on this machine):
      Homeserver:  %s
      User:        %s
      Password:    %s
      Accept the invitation to the patient's room and reply; your reply
      appears on the simulated phone. In the room, "!sms secure" switches
      the conversation to secure mode, "!sms help" lists the commands.

Ctrl-C stops everything; the data stays for the next run.
`, bridgeURL, clinicNumber, hsURL, staffUser, staffPassword)
}
