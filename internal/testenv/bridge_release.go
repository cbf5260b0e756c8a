package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildBridgeAt builds carebridge as it was at a commit of this repository (cgo, -tags
// goolm), for upgrade tests: a database and rooms made by that version, then the binary
// under test started on them. The binary is kept in the temporary directory, by commit,
// so later test runs reuse it.
func BuildBridgeAt(t testing.TB, commit string) string {
	t.Helper()
	bridgeBuildsMu.Lock()
	defer bridgeBuildsMu.Unlock()
	out := filepath.Join(os.TempDir(), "carebridge-at-"+commit, "carebridge")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	root, err := RepoRoot()
	RequireDep(t, DepBridgeBuild, err)
	RequireDep(t, DepBridgeBuild, os.MkdirAll(filepath.Dir(out), 0o700))
	src := filepath.Join(t.TempDir(), "carebridge")
	steps := [][]string{
		{"git", "clone", "-q", "--no-checkout", "--shared", root, src},
		{"git", "-C", src, "checkout", "-q", "--detach", commit},
		{"go", "build", "-tags", "goolm", "-o", out + ".tmp", "./cmd/carebridge"},
	}
	for _, step := range steps {
		cmd := exec.Command(step[0], step[1:]...)
		cmd.Dir = src
		if step[0] == "git" {
			cmd.Dir = root
		}
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=-buildvcs=false")
		if output, err := cmd.CombinedOutput(); err != nil {
			RequireDep(t, DepBridgeBuild, fmt.Errorf("%v failed: %w\n%s", step, err, output))
		}
	}
	if err = os.Rename(out+".tmp", out); err != nil {
		RequireDep(t, DepBridgeBuild, err)
	}
	return out
}

// SetBinary runs another carebridge binary at the next Restart, with the same config,
// registration and database: an upgrade.
func (b *Bridge) SetBinary(path string) {
	b.bin = path
}
