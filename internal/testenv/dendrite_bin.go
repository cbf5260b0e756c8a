package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// dendriteBinaries are the programs the harness runs, all from one Dendrite build.
var dendriteBinaries = []string{"dendrite", "generate-config", "generate-keys", "create-account"}

var (
	dendriteBinOnce sync.Once
	dendriteBinDir  string
	dendriteBinErr  error
)

// DendriteBinDir returns the folder holding the Dendrite binaries: $CAREBRIDGE_DENDRITE_BIN
// when set, else what scripts/install-dendrite.sh prints (installing on first use). The
// answer is cached for the process.
func DendriteBinDir() (string, error) {
	dendriteBinOnce.Do(func() {
		dendriteBinDir, dendriteBinErr = findDendriteBin()
	})
	return dendriteBinDir, dendriteBinErr
}

func findDendriteBin() (string, error) {
	if dir := os.Getenv("CAREBRIDGE_DENDRITE_BIN"); dir != "" {
		return dir, checkDendriteBin(dir)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", "install-dendrite.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("install script missing: %w", err)
	}
	// Test binaries of several packages may start at once: let one install, the others
	// wait and then find the cached build.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "carebridge-install-dendrite.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s failed: %w\n%s", script, err, lastLines(stderr.String(), 20))
	}
	lines := strings.Fields(strings.TrimSpace(stdout.String()))
	if len(lines) == 0 {
		return "", fmt.Errorf("%s printed no folder", script)
	}
	dir := lines[len(lines)-1]
	return dir, checkDendriteBin(dir)
}

func checkDendriteBin(dir string) error {
	for _, name := range dendriteBinaries {
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
