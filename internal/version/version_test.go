package version

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestProgramVersion: what scripts/version.sh passes, as --version and the FHIR
// CapabilityStatement show it.
func TestProgramVersion(t *testing.T) {
	saved := [4]string{Tag, Base, Commit, BuildTime}
	t.Cleanup(func() { Tag, Base, Commit, BuildTime = saved[0], saved[1], saved[2], saved[3] })
	const commit = "1673eecb2f0a5d8e9c4b7a6f3e2d1c0b9a8f7e6d"
	for _, c := range []struct {
		name, tag, base, want string
		release               bool
	}{
		{"a clean tagged commit", "v1.4.0", "v1.4.0", "v1.4.0", true},
		{"after the tag", "", "v1.4.0", "v1.4.0+dev.1673eecb", false},
		{"before the first tag", "", "0.1.0", "v0.1.0+dev.1673eecb", false},
	} {
		Tag, Base, Commit, BuildTime = c.tag, c.base, commit, "2026-03-02T09:00:00Z"
		v := Program()
		assert.Equal(t, c.want, v.FormattedVersion, c.name)
		assert.Equal(t, c.release, v.IsRelease, c.name)
		assert.Equal(t, "carebridge "+c.want+" (built at Mon, 02 Mar 2026 09:00:00 UTC with "+runtime.Version()+")", v.VersionDescription, c.name)
	}
}
