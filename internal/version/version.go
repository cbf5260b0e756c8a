// Package version says which carebridge this binary is. scripts/version.sh sets the
// variables at build time (-X) from git: the release tag when the tree is exactly a clean
// tagged commit, else the nearest tag as the base of a "+dev" version.
package version

import "go.mau.fi/util/progver"

// Set at build time by scripts/version.sh (go build -ldflags "-X …").
var (
	// Tag is the release tag (v1.2.3) when the build is one, else empty.
	Tag = ""
	// Base is the latest release at or before this build (the nearest tag).
	Base = "0.1.0"
	// Commit is the full git commit hash.
	Commit = "unknown"
	// BuildTime is RFC 3339; a release uses its commit's time, so rebuilding it gives
	// the same bytes.
	BuildTime = "unknown"
)

// Name and URL of the program, as the version line and the FHIR CapabilityStatement say.
const (
	Name = "carebridge"
	URL  = "https://github.com/carebridge/carebridge"
)

// Program is the version as mautrix bridges format it: "v1.2.3" for a release,
// "v1.2.3+dev.0123abcd" for anything else.
func Program() progver.ProgramVersion {
	return progver.ProgramVersion{Name: Name, URL: URL, BaseVersion: Base}.Init(Tag, Commit, BuildTime)
}
