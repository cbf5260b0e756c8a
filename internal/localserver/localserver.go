// Package localserver runs a homeserver program on loopback for the tests and the demo
// (internal/dendrite, internal/synapse): installing it through the project's script, one
// installer at a time across test binaries; its process, in a group of its own; waiting
// until it answers; stopping it.
package localserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Install runs repoRoot/scripts/<script> and returns the folder it prints last, after
// check accepts it. Several test binaries may start at once: one installs, the others
// wait for it (a file lock named after the script).
func Install(repoRoot, script string, check func(dir string) error) (string, error) {
	path := filepath.Join(repoRoot, "scripts", script)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("install script missing: %w", err)
	}
	unlock, err := lockFile(filepath.Join(os.TempDir(), "carebridge-"+strings.TrimSuffix(script, ".sh")+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", path)
	cmd.Dir = repoRoot
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s failed: %w\n%s", path, err, LastLines(stderr.String(), 20))
	}
	fields := strings.Fields(strings.TrimSpace(stdout.String()))
	if len(fields) == 0 {
		return "", fmt.Errorf("%s printed no folder", path)
	}
	dir := fields[len(fields)-1]
	return dir, check(dir)
}

func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("failed to open install lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to take install lock: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Process is a server program running in a process group of its own, so that stopping
// it also ends anything it started. It can be started again after Stop.
type Process struct {
	// Name is the program's name in errors ("dendrite").
	Name string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// Start runs cmd with its output appended to outputPath (after a restart the output of
// the first run stays readable) and returns at once.
func (p *Process) Start(cmd *exec.Cmd, outputPath string) error {
	p.mu.Lock()
	running := p.cmd != nil
	p.mu.Unlock()
	if running {
		return errors.New("already started")
	}
	out, err := os.OpenFile(outputPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("failed to create output file: %w", err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to run %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// WaitAnswers waits until each of urls answers 200 to a GET through client (in order),
// failing when the process exits first or timeout passes.
func (p *Process) WaitAnswers(client *http.Client, timeout time.Duration, urls ...string) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return fmt.Errorf("%s is not running", p.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for len(urls) > 0 && answers(ctx, client, urls[0]) {
			urls = urls[1:]
		}
		if len(urls) == 0 {
			return nil
		}
		select {
		case <-done:
			p.mu.Lock()
			err := p.waitErr
			p.mu.Unlock()
			return fmt.Errorf("%s exited during start-up: %v", p.Name, err)
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer %s within %s", p.Name, urls[0], timeout)
		case <-tick.C:
		}
	}
}

func answers(ctx context.Context, client *http.Client, url string) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitHomeserver waits until the homeserver's client API (clientURL) answers and, with
// federation on (federationURL not ""), its HTTPS listener serves the server's signing
// keys (its self-signed certificate accepted).
func (p *Process) WaitHomeserver(timeout time.Duration, clientURL, federationURL string) error {
	client := &http.Client{Timeout: time.Second}
	urls := []string{clientURL + "/_matrix/client/versions"}
	if federationURL != "" {
		client.Transport = InsecureTransport()
		urls = append(urls, federationURL+"/_matrix/key/v2/server")
	}
	return p.WaitAnswers(client, timeout, urls...)
}

// Stop ends the process group: SIGTERM, then SIGKILL after timeout. Safe to call when
// not running.
func (p *Process) Stop(timeout time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

// Running reports whether the process is running.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}
