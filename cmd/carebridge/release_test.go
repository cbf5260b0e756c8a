package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

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

// TestReleaseBinaryRunsOnARM64 makes a release the way `make release` does, for
// linux/arm64 only, from a clone of this checkout's HEAD tagged v9.8.7 (so uncommitted
// changes are not in it), and runs the binary's --version under qemu-aarch64: it prints
// the tag. It checks SHA256SUMS and that the binary is stripped and built with -trimpath.
func TestReleaseBinaryRunsOnARM64(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds carebridge for arm64")
	}
	_, err := exec.LookPath("aarch64-linux-gnu-gcc")
	testenv.RequireDep(t, testenv.DepARM64CrossCompiler, err)
	qemu, err := exec.LookPath("qemu-aarch64")
	testenv.RequireDep(t, testenv.DepQemuARM64, err)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)

	src := filepath.Join(t.TempDir(), "carebridge")
	git(t, root, "clone", "-q", "--no-checkout", "--shared", root, src)
	git(t, src, "checkout", "-q", "--detach", git(t, root, "rev-parse", "HEAD"))
	git(t, src, "tag", "v9.8.7")
	dist := t.TempDir()
	cmd := exec.Command("./scripts/release.sh")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "DIST="+dist, "ARCHES=arm64")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("scripts/release.sh:\n%s", out)

	const name = "carebridge-v9.8.7-linux-arm64"
	bin := filepath.Join(dist, name)
	data, err := os.ReadFile(bin)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	require.NoError(t, err)
	assert.Equal(t, hex.EncodeToString(sum[:])+"  "+name+"\n", string(sums), "SHA256SUMS in sha256sum -c form")

	f, err := elf.Open(bin)
	require.NoError(t, err)
	assert.Equal(t, elf.EM_AARCH64, f.Machine)
	assert.Nil(t, f.Section(".symtab"), "no symbol table (-s)")
	assert.Nil(t, f.Section(".debug_info"), "no DWARF (-w)")
	_ = f.Close()
	info, err := buildinfo.ReadFile(bin)
	require.NoError(t, err)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	assert.Equal(t, "true", settings["-trimpath"])
	assert.Equal(t, "goolm", settings["-tags"])
	assert.Equal(t, "1", settings["CGO_ENABLED"])
	assert.Equal(t, "arm64", settings["GOARCH"])
	assert.NotContains(t, string(data), src, "no build path in the binary")

	// Debian's cross libc is where qemu finds the arm64 loader and libc.
	version, err := exec.Command(qemu, "-L", "/usr/aarch64-linux-gnu", bin, "--version").CombinedOutput()
	require.NoError(t, err, "%s", version)
	committed, err := strconv.ParseInt(git(t, src, "log", "-1", "--format=%ct"), 10, 64)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("carebridge v9.8.7 (built at %s with %s)\n", time.Unix(committed, 0).UTC().Format(time.RFC1123), runtime.Version()),
		string(version), "the tag, and the commit's time as the build time")
}
