package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLinkNumberRefusals: linking fails with a sentence that says what to fix, and
// changes nothing at Twilio, for wrong credentials and for a number the account does not own.
func TestLinkNumberRefusals(t *testing.T) { eachDB(t, runLinkNumberRefusals) }

func runLinkNumberRefusals(t *testing.T, kind string) {
	if testing.Short() {
		t.Skip("starts Dendrite and the bridge")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newEnv(t, kind)
	tests := []struct {
		name, sid, token, phone, want string
	}{
		{"wrong auth token", accountSID, "00000000000000000000000000000000", clinicPhone, "Twilio did not accept the credentials"},
		{"number of another account", accountSID, authToken, "+15559990000", "does not own +15559990000"},
		{"malformed account SID", "AC123", authToken, clinicPhone, "account SID must be AC followed by 32"},
		{"not a phone number", accountSID, authToken, "front desk", "clinic phone number is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.br.LinkNumber(ctx, e.adminID, tt.sid, tt.token, tt.phone)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	// Nothing was linked: the clinic number's webhook is untouched, so a text gets nowhere.
	_, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Hello?")
	assert.ErrorContains(t, err, "SmsUrl", "the number's webhook was never set")
	var logins struct {
		LoginIDs []string `json:"login_ids"`
	}
	status, err := e.br.Provision(ctx, http.MethodGet, "/v3/logins", e.adminID, nil, &logins)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Empty(t, logins.LoginIDs)
}
