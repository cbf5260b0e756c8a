package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// WebReplica is a `carebridge web` process beside a bridge under test: the patient pages
// alone, on a port of their own, over the bridge's config and database.
type WebReplica struct {
	t       testing.TB
	port    int
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
}

// StartWeb starts a web replica with the bridge's config and waits until its /readyz
// answers 200. It is stopped when the test ends.
func (b *Bridge) StartWeb(t testing.TB) *WebReplica {
	t.Helper()
	w := &WebReplica{t: t, port: FreePort(t), exited: make(chan struct{})}
	w.logPath = filepath.Join(b.dir, "web-"+strconv.Itoa(w.port)+".log")
	logFile, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("failed to open web replica log: %v", err)
	}
	w.cmd = exec.Command(b.bin, "web", "-c", b.ConfigPath(), "--listen", "127.0.0.1:"+strconv.Itoa(w.port))
	w.cmd.Dir = b.dir
	w.cmd.Stdout, w.cmd.Stderr = logFile, logFile
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err = w.cmd.Start(); err != nil {
		t.Fatalf("failed to start carebridge web: %v", err)
	}
	go func() {
		w.exitErr = w.cmd.Wait()
		_ = logFile.Close()
		close(w.exited)
	}()
	t.Cleanup(func() {
		w.Stop()
		keepLog(t, w.logPath, "web-"+strconv.Itoa(w.port))
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-w.exited:
			t.Fatalf("carebridge web exited during start-up: %v\n%s", w.exitErr, tailFile(w.logPath, 30))
		default:
		}
		resp, err := http.Get(w.URL() + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("carebridge web was not ready in 30 s\n%s", tailFile(w.logPath, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URL is where the replica serves the pages.
func (w *WebReplica) URL() string { return "http://127.0.0.1:" + strconv.Itoa(w.port) }

// Pid is the replica's process.
func (w *WebReplica) Pid() int { return w.cmd.Process.Pid }

// Log returns everything the replica logged so far.
func (w *WebReplica) Log() string {
	data, _ := os.ReadFile(w.logPath)
	return string(data)
}

// Stop ends the replica (SIGTERM, then SIGKILL after 10 s) and reports how it exited.
func (w *WebReplica) Stop() error {
	select {
	case <-w.exited:
		return w.exitErr
	default:
	}
	_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		<-w.exited
		return fmt.Errorf("carebridge web did not stop within 10 s of SIGTERM")
	}
	return w.exitErr
}
