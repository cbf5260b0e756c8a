package admin

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAuditCommandArguments: wrong arguments are refused (exit 2) before any config or
// database is touched, with a message that says what to write instead.
func TestAuditCommandArguments(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "config.yaml")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"audit"}, "usage:"},
		{"unknown subcommand", []string{"audit", "check"}, `unknown subcommand "check"`},
		{"stray argument", []string{"audit", "verify", "extra"}, `unexpected argument "extra"`},
		{"export flag on verify", []string{"audit", "verify", "--since", "2026-01-01"}, "flag provided but not defined: -since"},
		{"expect without hash", []string{"audit", "verify", "--expect", "1042"}, `"1042" is not ID:HASH`},
		{"expect with a short hash", []string{"audit", "verify", "--expect", "1042:3f3f"}, "64 lower-case hex digits"},
		{"stray argument to head", []string{"audit", "head", "extra"}, `unexpected argument "extra"`},
		{"missing config for head", []string{"audit", "head", "-c", missing}, "failed to read config"},
		{"missing config", []string{"audit", "verify", "-c", missing}, "failed to read config"},
		{"no since", []string{"audit", "export", "-c", missing}, "--since is required"},
		{"US date", []string{"audit", "export", "-c", missing, "--since", "01/02/2026"}, `--since "01/02/2026" is not a date: write it as 2026-01-31`},
		{"word for until", []string{"audit", "export", "-c", missing, "--since", "2026-01-01", "--until", "February"}, `--until "February" is not a date`},
		{"until before since", []string{"audit", "export", "-c", missing, "--since", "2026-02-01", "--until", "2026-01-01"}, "is not after --since"},
		{"unknown format", []string{"audit", "export", "-c", missing, "--since", "2026-01-01", "--format", "xml"}, `--format "xml" is not supported: use jsonl or csv`},
		{"good arguments, missing config", []string{"audit", "export", "-c", missing, "--since", "2026-01-01T08:00:00Z"}, "failed to read config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code, handled := Run(context.Background(), tc.args, &stdout, &stderr)
			require.True(t, handled)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr.String(), tc.want)
			assert.Empty(t, stdout.String())
		})
	}
}

func TestAuditBoundsRoundTrip(t *testing.T) {
	for in, want := range map[string]string{
		"2026-01-01":                "2026-01-01",
		"2026-01-31T08:00:00Z":      "2026-01-31T08:00:00Z",
		"2026-01-31T08:00:00-05:00": "2026-01-31T13:00:00Z",
	} {
		got, err := parseAuditBound("since", in)
		require.NoError(t, err)
		assert.Equal(t, want, formatAuditBound(got))
	}
}
