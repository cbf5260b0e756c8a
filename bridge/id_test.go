package bridge

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"maunium.net/go/mautrix/bridgev2/networkid"
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
		assert.Equal(t, networkid.UserID(tt.id), MakeUserID(tt.e164))
		assert.Equal(t, networkid.UserLoginID(tt.id), MakeLoginID(tt.e164))
		key := MakePortalKey(tt.e164, "15550001111")
		assert.Equal(t, networkid.PortalID(tt.id), key.ID)
		assert.Equal(t, networkid.UserLoginID("15550001111"), key.Receiver, "one portal per clinic number and patient")
		assert.Equal(t, tt.e164, PhoneOf(MakeUserID(tt.e164)))
		assert.Equal(t, tt.e164, PhoneOf(key.ID))
	}
}
