package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

// standardSecret is a Standard Webhooks secret: whsec_ and a 24-byte key in base64.
const standardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// deliverOnce POSTs one event as the delivery loop does and returns what the receiver got.
func deliverOnce(t *testing.T, events config.EventsConfig) (http.Header, []byte) {
	t.Helper()
	var header http.Header
	var body []byte
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	events.URL = receiver.URL
	ic := &config.IntegrationConfig{Name: "ehr", Events: events}
	d := newEventDelivery(&Server{opts: Options{Integrations: []config.IntegrationConfig{*ic}}})
	payload := []byte(`{"id":"evt_1d8f3a6c2b9e4f70a5c3d2e1","type":"patient.opted_out","data":{}}`)
	require.NoError(t, d.post(context.Background(), ic, &database.APIEvent{EventID: "evt_1d8f3a6c2b9e4f70a5c3d2e1", Type: EventOptedOut}, payload))
	require.Equal(t, payload, body)
	return header, body
}

// TestStandardWebhooksSignature checks a delivery with events.standard_webhooks as the
// specification says a receiver verifies it, computed here from the specification rather
// than with the library the bridge signs with: webhook-signature is "v1," and the base64
// HMAC-SHA256, under the base64-decoded key after "whsec_", of "<webhook-id>.<webhook-timestamp>.<body>";
// webhook-id is the event's id; Carebridge-Signature is still there, over the same time.
func TestStandardWebhooksSignature(t *testing.T) {
	before := time.Now().Unix()
	header, body := deliverOnce(t, config.EventsConfig{Secret: standardSecret, StandardWebhooks: true})

	id, ts, signature := header.Get("webhook-id"), header.Get("webhook-timestamp"), header.Get("webhook-signature")
	assert.Equal(t, "evt_1d8f3a6c2b9e4f70a5c3d2e1", id, "webhook-id is the event's id")
	sent, err := strconv.ParseInt(ts, 10, 64)
	require.NoError(t, err, "webhook-timestamp is integer unix seconds: %q", ts)
	assert.True(t, sent >= before && sent <= time.Now().Unix(), "webhook-timestamp is the time of sending")

	key, err := base64.StdEncoding.DecodeString(standardSecret[len("whsec_"):])
	require.NoError(t, err)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	assert.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), signature)

	assert.Equal(t, Sign(standardSecret, time.Unix(sent, 0), body), header.Get(SignatureHeader), "today's signature beside it, at the same time")
	assert.Equal(t, "evt_1d8f3a6c2b9e4f70a5c3d2e1", header.Get("Carebridge-Event-Id"))
}

// TestStandardWebhooksAreOptIn: without the option a delivery carries only carebridge's
// own signature.
func TestStandardWebhooksAreOptIn(t *testing.T) {
	header, _ := deliverOnce(t, config.EventsConfig{Secret: standardSecret})
	assert.NotEmpty(t, header.Get(SignatureHeader))
	for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
		assert.Empty(t, header.Get(h), h)
	}
}
