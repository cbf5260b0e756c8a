package admin

import (
	"testing"
)

// FuzzAuditBound: whatever an operator passes as --since or --until, the export never
// panics on it, and the bound the audit row records ("audit exported", formatAuditBound)
// reads back as the very instant that was exported.
func FuzzAuditBound(f *testing.F) {
	for _, seed := range []string{"2026-01-01", "2026-01-31T08:00:00Z", "2026-01-31T08:00:00-05:00", "2026-01-31T08:00:00.5Z",
		"01/02/2026", "February", "0000-01-01", "9999-12-31T23:59:59+14:00", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		at, err := parseAuditBound("since", value)
		if err != nil {
			return
		}
		recorded := formatAuditBound(at)
		again, err := parseAuditBound("since", recorded)
		if err != nil || !again.Equal(at) {
			t.Fatalf("--since %q is %s, recorded as %q, which reads as %s (%v)", value, at, recorded, again, err)
		}
	})
}
