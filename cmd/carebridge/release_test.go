package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// git runs git in dir with a fixed identity and clock, and returns its output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Release Test", "GIT_AUTHOR_EMAIL=release@clinic.example",
		"GIT_COMMITTER_NAME=Release Test", "GIT_COMMITTER_EMAIL=release@clinic.example",
		"GIT_AUTHOR_DATE=2026-03-02T09:00:00Z", "GIT_COMMITTER_DATE=2026-03-02T09:00:00Z", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// versionScript runs scripts/version.sh in dir and returns its ldflags as name=value
// (the package path cut off) and its name for files.
func versionScript(t *testing.T, dir string) (map[string]string, string) {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	run := func(arg string) string {
		cmd := exec.Command(filepath.Join(root, "scripts", "version.sh"), arg)
		cmd.Dir = dir
		out, err := cmd.Output()
		require.NoError(t, err)
		return strings.TrimSpace(string(out))
	}
	flags := map[string]string{}
	for _, f := range strings.Fields(run("ldflags")) {
		if f == "-X" {
			continue
		}
		name, value, _ := strings.Cut(strings.TrimPrefix(f, "github.com/carebridge/carebridge/internal/version."), "=")
		flags[name] = value
	}
	return flags, run("name")
}

// TestVersionComesFromTheGitTag: a clean tagged commit is that release; a commit after it,
// or uncommitted changes, is a "+dev" build based on it; before the first tag there is
// no base and the binary's own (0.1.0) stands.
func TestVersionComesFromTheGitTag(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("clinic\n"), 0o644))
	git(t, dir, "add", "README.md")
	git(t, dir, "commit", "-q", "-m", "first")
	first := git(t, dir, "rev-parse", "HEAD")

	flags, name := versionScript(t, dir)
	assert.Equal(t, map[string]string{"Tag": "", "Commit": first, "BuildTime": "2026-03-02T09:00:00Z"}, flags, "no tag yet")
	assert.Equal(t, first[:7], name)

	git(t, dir, "tag", "v1.4.0")
	git(t, dir, "tag", "not-a-release")
	flags, name = versionScript(t, dir)
	assert.Equal(t, map[string]string{"Tag": "v1.4.0", "Base": "v1.4.0", "Commit": first, "BuildTime": "2026-03-02T09:00:00Z"}, flags,
		"a release: the tag, and the commit's time so that it rebuilds to the same bytes")
	assert.Equal(t, "v1.4.0", name)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("clinic, changed\n"), 0o644))
	flags, name = versionScript(t, dir)
	assert.Equal(t, "", flags["Tag"], "uncommitted changes are not the release")
	assert.Equal(t, "v1.4.0", flags["Base"])
	assert.NotEqual(t, "2026-03-02T09:00:00Z", flags["BuildTime"], "a dirty build has its own time")
	assert.Equal(t, "v1.4.0-dirty", name)

	git(t, dir, "commit", "-q", "-am", "second")
	second := git(t, dir, "rev-parse", "HEAD")
	flags, name = versionScript(t, dir)
	assert.Equal(t, map[string]string{"Tag": "", "Base": "v1.4.0", "Commit": second, "BuildTime": "2026-03-02T09:00:00Z"}, flags)
	assert.Equal(t, "v1.4.0-1-g"+second[:7], name)
}
