package sms

import (
	"testing"
	"time"
)

// FuzzParseTwilioDate: whatever Twilio's message log (or whoever answers in its place)
// writes as a date, ParseTwilioDate never panics, and a date it accepts is the instant
// the same date written again reads as.
func FuzzParseTwilioDate(f *testing.F) {
	for _, seed := range []string{"Wed, 18 Aug 2010 20:01:40 +0000", "Wed, 18 Aug 2010 20:01:40 GMT", "Mon, 02 Mar 2026 08:00:00 -0500",
		"18 Aug 2010 20:01:40 +0000", "", "Wed, 31 Feb 2010 20:01:40 +0000", "Wed, 18 Aug 2010 24:00:00 +0000"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		at, err := ParseTwilioDate(raw)
		if err != nil {
			if !at.IsZero() {
				t.Fatalf("%q: an error with a time", raw)
			}
			return
		}
		again, err := ParseTwilioDate(at.Format(time.RFC1123Z))
		if err != nil || !again.Equal(at) {
			t.Fatalf("%q read as %s, written again as %q, read as %s (%v)", raw, at, at.Format(time.RFC1123Z), again, err)
		}
	})
}
