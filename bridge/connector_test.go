package bridge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

// A webhook that reaches the appservice's HTTP server while the connector is still
// starting is answered 503 (Twilio retries it), not handled half-initialised.
func TestWhenStarted(t *testing.T) {
	c := &Connector{}
	called := 0
	h := c.whenStarted(func(w http.ResponseWriter, r *http.Request) {
		called++
		w.WriteHeader(http.StatusOK)
	})
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodPost, "/_carebridge/twilio/15550001111/inbound", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	assert.Zero(t, called)

	c.started.Store(true)
	rec = httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodPost, "/_carebridge/twilio/15550001111/inbound", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, 1, called)
}

// TestUntilStarted: bridgev2's routes answer 503 with Retry-After until Start has
// finished, but the homeserver's API, which bridgev2 needs while it starts, and the
// liveness check.
func TestUntilStarted(t *testing.T) {
	c := &Connector{}
	called := 0
	h := c.untilStarted(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called++
		w.WriteHeader(http.StatusOK)
	}))
	serve := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}
	for _, path := range []string{"/_matrix/provision/v3/login/start/auth-token", "/_matrix/provision/v3/logins", "/_mautrix/publicmedia/x", "/_matrix/mau/ready"} {
		rec := serve(http.MethodPost, path)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, path)
		assert.Equal(t, "1", rec.Header().Get("Retry-After"), path)
	}
	assert.Zero(t, called)
	assert.Equal(t, http.StatusOK, serve(http.MethodPost, "/_matrix/app/v1/ping").Code)
	assert.Equal(t, http.StatusOK, serve(http.MethodPut, "/_matrix/app/v1/transactions/1").Code)
	assert.Equal(t, http.StatusOK, serve(http.MethodGet, "/_matrix/mau/live").Code)
	assert.Equal(t, 3, called)

	c.started.Store(true)
	assert.Equal(t, http.StatusOK, serve(http.MethodPost, "/_matrix/provision/v3/login/start/auth-token").Code)
	assert.Equal(t, 4, called)
}
