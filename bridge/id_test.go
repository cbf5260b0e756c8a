package bridge

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/id"
)

func TestIDsRoundTrip(t *testing.T) {
	tests := []struct {
		e164 string
		id   string
	}{
		{"+15551234567", "15551234567"},
		{"+442079460958", "442079460958"},
	}
	for _, tt := range tests {
		assert.Equal(t, networkid.UserID(tt.id), MakeClinicUserID(tt.e164))
		assert.Equal(t, networkid.UserLoginID(tt.id), MakeLoginID(tt.e164))
		key := MakePortalKey(tt.e164, "15550001111")
		assert.Equal(t, networkid.PortalID(tt.id), key.ID)
		assert.Equal(t, networkid.UserLoginID("15550001111"), key.Receiver, "one portal per clinic number and patient")
		assert.Equal(t, tt.e164, PhoneOf(key.ID))
	}
}

func TestPatientIDsAreOpaque(t *testing.T) {
	seen := map[networkid.UserID]bool{}
	for range 1000 {
		pid := newPatientID()
		assert.True(t, IsPatientID(pid), pid)
		assert.False(t, seen[pid], "IDs are random")
		seen[pid] = true
		assert.Len(t, string(pid), 17)
		assert.Equal(t, string(pid), id.EncodeUserLocalpart(string(pid)), "a Matrix localpart as it is")
		assert.Equal(t, -1, strings.IndexFunc(string(pid[:1]), func(r rune) bool { return r >= '0' && r <= '9' }),
			"starts with a letter: never taken for a number")
	}
}

func TestIsPatientID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"pabcdefghijklmnop", true},
		{"pa2b3c4d5e6f7g2h3", true},
		{"15551234567", false},          // a legacy ghost, named by the number
		{"15550001111", false},          // the clinic number's own ghost
		{"pabcdefghijklmno", false},     // too short
		{"pabcdefghijklmnopq", false},   // too long
		{"qabcdefghijklmnop", false},    // wrong prefix
		{"pABCDEFGHIJKLMNOP", false},    // upper case
		{"pabcdefghijklmn01", false},    // 0 and 1 are not base32
		{"pabcdefghijklmno=", false},    // padding
		{"p/bcdefghijklmnop", false},    // outside the alphabet
		{"p222222222222222\xff", false}, // found by FuzzIsPatientID
		{"p22222222222222\n2", false},   // base32's decoder skips line breaks
		{"", false},
	} {
		assert.Equal(t, tt.want, IsPatientID(networkid.UserID(tt.id)), tt.id)
	}
}

// FuzzIsPatientID: any string (a Matrix user ID's localpart comes from anyone inviting a
// ghost) is judged without panicking, and only the ID's exact shape passes.
func FuzzIsPatientID(f *testing.F) {
	f.Add("pabcdefghijklmnop")
	f.Add("15551234567")
	f.Add("p" + strings.Repeat("7", 16))
	f.Add("p\x00bcdefghijklmnop")
	f.Fuzz(func(t *testing.T, s string) {
		if !IsPatientID(networkid.UserID(s)) {
			return
		}
		if len(s) != 17 || s[0] != 'p' {
			t.Fatalf("%q passed with the wrong length or prefix", s)
		}
		for _, r := range s[1:] {
			if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
				t.Fatalf("%q passed with %q", s, r)
			}
		}
	})
}
