package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	dendriteStartTimeout = 60 * time.Second
	dendriteStopTimeout  = 5 * time.Second
)

// Dendrite is a throw-away Dendrite homeserver on 127.0.0.1 with its own folder,
// SQLite databases and signing key. Federation, presence, open registration and rate
// limits are off. NewDendrite only reserves a port, so that an appservice registration
// naming the homeserver URL can be written before Start.
type Dendrite struct {
	t            testing.TB
	binDir       string
	dir          string
	port         int
	sharedSecret string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
	stopped bool

	logShown bool // the log tail is already in a failure message
}

// NewDendrite prepares a homeserver for the test; it is stopped by t.Cleanup. The test
// is skipped (failed in CI) when no Dendrite build can be found or installed.
func NewDendrite(t testing.TB) *Dendrite {
	t.Helper()
	binDir, err := DendriteBinDir()
	RequireDep(t, DepDendrite, err)
	d := &Dendrite{
		t:      t,
		binDir: binDir,
		dir:    t.TempDir(),
		port:   FreePort(t),
	}
	t.Cleanup(func() {
		if t.Failed() && d.cmd != nil && !d.logShown {
			t.Logf("Dendrite log tail (%s):\n%s", d.LogPath(), d.logTail(30))
		}
		d.Stop()
	})
	return d
}

// URL is the client-server API base, http://127.0.0.1:PORT.
func (d *Dendrite) URL() string { return "http://127.0.0.1:" + strconv.Itoa(d.port) }

// ServerName is the homeserver's domain, the part after the colon in user IDs.
func (d *Dendrite) ServerName() string { return "localhost" }

// Port is the loopback port the homeserver listens on.
func (d *Dendrite) Port() int { return d.port }

// Dir is the homeserver's folder: config, key, databases and logs.
func (d *Dendrite) Dir() string { return d.dir }

// ConfigPath is the dendrite.yaml written by Start.
func (d *Dendrite) ConfigPath() string { return filepath.Join(d.dir, "dendrite.yaml") }

// LogPath is Dendrite's own log file (level info).
func (d *Dendrite) LogPath() string { return filepath.Join(d.dir, "log", "dendrite.log") }

// RegistrationSharedSecret is the secret for /_synapse/admin/v1/register, set by Start.
func (d *Dendrite) RegistrationSharedSecret() string { return d.sharedSecret }

func (d *Dendrite) stdoutPath() string { return filepath.Join(d.dir, "dendrite.out") }

// Start writes the config, with the given appservice registration files, and runs the
// homeserver until /_matrix/client/versions answers. It fails the test after 60 s.
func (d *Dendrite) Start(registrationPaths ...string) {
	d.t.Helper()
	if err := d.start(registrationPaths); err != nil {
		d.Stop()
		d.logShown = true
		d.t.Fatalf("failed to start Dendrite: %v\nlog tail:\n%s", err, d.logTail(30))
	}
}

func (d *Dendrite) start(registrationPaths []string) error {
	d.mu.Lock()
	if d.cmd != nil {
		d.mu.Unlock()
		return errors.New("already started")
	}
	d.mu.Unlock()
	if err := d.writeDendriteConfig(registrationPaths); err != nil {
		return err
	}
	out, err := os.Create(d.stdoutPath())
	if err != nil {
		return fmt.Errorf("failed to create output file: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(filepath.Join(d.binDir, "dendrite"),
		"-config", "dendrite.yaml",
		"-http-bind-address", "127.0.0.1:"+strconv.Itoa(d.port))
	// matrix_key.pem is a relative path in the config.
	cmd.Dir = d.dir
	cmd.Stdout = out
	cmd.Stderr = out
	// Its own process group, so Stop also ends anything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to run dendrite: %w", err)
	}
	done := make(chan struct{})
	d.mu.Lock()
	d.cmd = cmd
	d.done = done
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(done)
	}()
	return d.waitReady(done)
}

func (d *Dendrite) waitReady(done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), dendriteStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.URL()+"/_matrix/client/versions", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			d.mu.Lock()
			err := d.waitErr
			d.mu.Unlock()
			return fmt.Errorf("dendrite exited during start-up: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("dendrite did not answer on %s within %s", d.URL(), dendriteStartTimeout)
		case <-tick.C:
		}
	}
}

// Stop ends the homeserver's process group: SIGTERM, then SIGKILL after 5 s. It is safe
// to call more than once and runs by itself at the end of the test.
func (d *Dendrite) Stop() {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	if cmd == nil || d.stopped {
		d.mu.Unlock()
		return
	}
	d.stopped = true
	d.mu.Unlock()
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(dendriteStopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

// CreateUser registers localpart with the shared secret and returns its user ID.
func (d *Dendrite) CreateUser(t testing.TB, localpart, password string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(d.binDir, "create-account"),
		"-config", "dendrite.yaml",
		"-username", localpart,
		"-password", password,
		"-url", d.URL())
	cmd.Dir = d.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("failed to create Matrix user %s: %v: %s", localpart, err, strings.TrimSpace(string(out)))
	}
	return "@" + localpart + ":" + d.ServerName()
}

// logTail prefers the process output: it has everything the log file has, plus panics.
func (d *Dendrite) logTail(n int) string {
	if info, err := os.Stat(d.stdoutPath()); err == nil && info.Size() > 0 {
		return tailFile(d.stdoutPath(), n)
	}
	return tailFile(d.LogPath(), n)
}
