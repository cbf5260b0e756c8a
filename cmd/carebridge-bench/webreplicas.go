package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/carebridge/carebridge/internal/testenv"
)

// startWebReplicas runs n `carebridge web` processes (the patient pages alone) on the
// bridge's config and database, for the secure chat phase to spread its patients over
// (PostgreSQL only: replicas share the database). They stop with the bench.
func (s *system) startWebReplicas(ctx context.Context, t *benchTB, n int) error {
	if n == 0 {
		return nil
	}
	if s.db.Type != "postgres" {
		return fmt.Errorf("web replicas need PostgreSQL, not %s", s.db.Type)
	}
	bin := os.Getenv("CAREBRIDGE_BIN")
	for i := range n {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		logFile, err := os.Create(filepath.Join(filepath.Dir(s.br.ConfigPath()), fmt.Sprintf("web-%d.log", i)))
		if err != nil {
			return err
		}
		cmd := exec.Command(bin, "web", "-c", s.br.ConfigPath(), "--listen", addr)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err = cmd.Start(); err != nil {
			return fmt.Errorf("failed to start web replica %d: %w", i, err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			_ = cmd.Wait()
			_ = logFile.Close()
		})
		base := "http://" + addr
		if err = waitHTTP(ctx, base+"/readyz", time.Minute); err != nil {
			return fmt.Errorf("web replica %d: %w", i, err)
		}
		s.webs = append(s.webs, base)
		s.webPids = append(s.webPids, cmd.Process.Pid)
	}
	note("[%s] secure chat pages on %d web replicas", s.kind, n)
	return nil
}

// pageBase is where patient i opens the secure chat: the bridge, or one of the web
// replicas (each patient always the same one, as a sticky load balancer would).
func (s *system) pageBase(i int) string {
	if len(s.webs) == 0 {
		return s.br.URL()
	}
	return s.webs[i%len(s.webs)]
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s", url, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
