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
