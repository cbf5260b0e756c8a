//go:build release

// The arm64 cross build takes minutes on a cold build cache (measured: 3 minutes of CPU,
// 8.5 minutes on the shared 2-core machine), so it is not part of `make test`: `make release-test` runs it
// (tags goolm,release), after installing the cross compiler and qemu-user.

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
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

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
