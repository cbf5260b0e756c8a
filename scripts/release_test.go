// Package scripts holds the tests of the project's scripts (release.sh, version.sh),
// apart from the other packages so that `make test` runs the arm64 build beside them.
package scripts

import (
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// (main. cut off) and its name for files.
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
		name, value, ok := strings.Cut(f, "=")
		require.True(t, ok, f)
		require.True(t, strings.HasPrefix(name, "main."), "%s: mxmain's variables live in package main", f)
		flags[strings.TrimPrefix(name, "main.")] = value
	}
	return flags, run("name")
}

// TestVersionComesFromTheGitTag: a clean tagged commit is that release; a commit after it,
// or uncommitted changes, is not (no tag: the binary shows its Version+dev.<commit>).
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
	assert.Equal(t, map[string]string{"Tag": "v1.4.0", "Commit": first, "BuildTime": "2026-03-02T09:00:00Z"}, flags,
		"a release: the tag, and the commit's time so that it rebuilds to the same bytes")
	assert.Equal(t, "v1.4.0", name)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("clinic, changed\n"), 0o644))
	flags, name = versionScript(t, dir)
	assert.Equal(t, "", flags["Tag"], "uncommitted changes are not the release")
	assert.NotEqual(t, "2026-03-02T09:00:00Z", flags["BuildTime"], "a dirty build has its own time")
	assert.Equal(t, "v1.4.0-dirty", name)

	git(t, dir, "commit", "-q", "-am", "second")
	second := git(t, dir, "rev-parse", "HEAD")
	flags, name = versionScript(t, dir)
	assert.Equal(t, map[string]string{"Tag": "", "Commit": second, "BuildTime": "2026-03-02T09:00:00Z"}, flags)
	assert.Equal(t, "v1.4.0-1-g"+second[:7], name)
}

// TestReleaseBinaryRunsOnARM64 cuts a release v9.8.7 the way the README says, in a clone
// of this checkout's HEAD (so uncommitted changes are not in it): a tag that
// cmd/carebridge's Version does not match is refused; with Version set to 9.8.7 and
// tagged, scripts/release.sh (linux/arm64 only: what this test needs of `make release`)
// writes a stripped -trimpath binary and SHA256SUMS, and the binary's --version, run
// under qemu-aarch64, prints the tag.
func TestReleaseBinaryRunsOnARM64(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds carebridge for arm64 (minutes with a cold build cache)")
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
	dist := t.TempDir()
	release := func() (string, error) {
		// At the lowest priority: under `make test` it builds beside the integration
		// tests, some of which time the bridge.
		cmd := exec.Command("nice", "-n", "19", "./scripts/release.sh")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "DIST="+dist, "ARCHES=arm64")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	git(t, src, "tag", "v9.8.6")
	out, err := release()
	require.Error(t, err, "a tag the source's Version does not match: %s", out)
	assert.Contains(t, out, `the tag is v9.8.6 but cmd/carebridge/main.go says Version = "`)
	assert.Contains(t, out, `set it to "9.8.6"`)

	mainGo := filepath.Join(src, "cmd", "carebridge", "main.go")
	source, err := os.ReadFile(mainGo)
	require.NoError(t, err)
	versionLine := regexp.MustCompile(`(?m)^const Version = "[^"]*"$`)
	require.Regexp(t, versionLine, string(source))
	require.NoError(t, os.WriteFile(mainGo, versionLine.ReplaceAll(source, []byte(`const Version = "9.8.7"`)), 0o644))
	git(t, src, "commit", "-q", "-am", "carebridge v9.8.7")
	git(t, src, "tag", "v9.8.7")
	start := time.Now()
	out, err = release()
	require.NoError(t, err, "%s", out)
	t.Logf("scripts/release.sh (%s):\n%s", time.Since(start).Round(time.Second), out)

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
