package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fakeGauges struct {
	pending  int64
	oldest   time.Time
	sessions int64
	err      error
}

func (f *fakeGauges) InboundQueue(context.Context) (int64, time.Time, error) {
	return f.pending, f.oldest, f.err
}

func (f *fakeGauges) ActiveSessions(context.Context) (int64, error) { return f.sessions, f.err }

// phoneLike matches anything that could be a phone number: 7 or more digits, with or
// without a plus and separators.
var phoneLike = regexp.MustCompile(`\+?\d[\d\s().-]{6,}\d`)

func TestNoPhoneNumberInAnyLabel(t *testing.T) {
	m := New(&fakeGauges{pending: 3, oldest: time.Now().Add(-time.Minute), sessions: 2})
	// Every method, with what a careless caller might pass: phone numbers, names, room IDs.
	for _, junk := range []string{"+15551234567", "15551234567", "(555) 123-4567", "Jane Doe",
		"!room:clinic.example", "@nurse:clinic.example", "SM0123456789abcdef0123456789abcdef"} {
		m.Inbound(junk)
		m.Outbound(junk)
		m.WebhookRejected(junk, junk)
		m.WebhookRejected("inbound", junk)
		m.TwilioRequest(junk, time.Now(), nil)
		m.CodeFailed(junk)
	}
	for _, result := range []string{InboundStored, InboundRepeated, InboundMalformed, InboundOtherNumber,
		InboundNotPhone, InboundStoreFailed} {
		m.Inbound(result)
	}
	for _, result := range []string{OutboundSent, OutboundFailed, OutboundOptedOut, OutboundTooLong,
		OutboundUnsupported, OutboundSecure} {
		m.Outbound(result)
	}
	for _, reason := range []string{RejectUnreadable, RejectLookupFailed, RejectUnknownNumber, RejectTokenFailed,
		RejectSignature, RejectOtherAccount} {
		m.WebhookRejected("inbound", reason)
		m.WebhookRejected("status", reason)
	}
	for _, code := range []int{0, 21610, 30003, 30007, 15551234567, -1} {
		m.DeliveryFailure(code)
	}
	m.InboundDelivery(true)
	m.InboundDelivery(false)
	for _, op := range []string{OpSend, OpLookupNumber, OpCheckAccount, OpConfigureWebhooks} {
		m.TwilioRequest(op, time.Now().Add(-120*time.Millisecond), nil)
		m.TwilioRequest(op, time.Now(), errors.New("twilio error 21211: invalid 'To' phone number +15551234567"))
	}
	m.CodeSent(nil)
	m.CodeSent(errors.New("twilio refused +15551234567"))
	m.CodeRateLimited()
	m.CodeFailed("wrong")
	m.CodeFailed("expired")
	m.LinkLocked()
	m.FirstReply(4 * time.Minute)

	families, err := m.Registry.Gather()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, family := range families {
		seen[family.GetName()] = true
		for _, metric := range family.GetMetric() {
			for _, pair := range metric.GetLabel() {
				assert.False(t, phoneLike.MatchString(pair.GetValue()), "%s{%s=%q} looks like a phone number",
					family.GetName(), pair.GetName(), pair.GetValue())
				for _, forbidden := range []string{"Jane", "clinic.example", "SM0123"} {
					assert.NotContains(t, pair.GetValue(), forbidden, family.GetName())
				}
			}
		}
	}
	for _, name := range []string{"carebridge_inbound_messages_total", "carebridge_inbound_deliveries_total",
		"carebridge_outbound_messages_total", "carebridge_delivery_failures_total", "carebridge_webhook_rejections_total",
		"carebridge_twilio_request_duration_seconds", "carebridge_secure_codes_total",
		"carebridge_secure_code_failures_total", "carebridge_secure_lockouts_total", "carebridge_first_reply_seconds",
		"carebridge_inbound_queue_depth", "carebridge_inbound_queue_oldest_age_seconds",
		"carebridge_secure_sessions_active", "go_goroutines"} {
		assert.True(t, seen[name], "missing %s", name)
	}
	body := scrape(t, m)
	// 7 junk results, and 7 inbound webhooks rejected for a junk reason.
	assert.Contains(t, body, `carebridge_inbound_messages_total{result="other"} 7`+"\n")
	assert.Contains(t, body, `carebridge_inbound_messages_total{result="rejected_other"} 7`+"\n")
	assert.Contains(t, body, `carebridge_inbound_messages_total{result="rejected_signature"} 1`+"\n")
	assert.Contains(t, body, `carebridge_delivery_failures_total{code="30007"} 1`+"\n")
	assert.Contains(t, body, `carebridge_delivery_failures_total{code="0"} 3`+"\n")
}

func TestNilMetricsCountNothing(t *testing.T) {
	var m *Metrics
	assert.NotPanics(t, func() {
		m.Inbound(InboundStored)
		m.InboundDelivery(true)
		m.Outbound(OutboundSent)
		m.DeliveryFailure(30007)
		m.WebhookRejected("inbound", RejectSignature)
		m.TwilioRequest(OpSend, time.Now(), nil)
		m.CodeSent(nil)
		m.CodeRateLimited()
		m.CodeFailed("wrong")
		m.LinkLocked()
		m.FirstReply(time.Minute)
	})
}

func TestDatabaseGauges(t *testing.T) {
	gauges := &fakeGauges{pending: 4, oldest: time.Now().Add(-90 * time.Second), sessions: 7}
	m := New(gauges)
	body := scrape(t, m)
	assert.Contains(t, body, "carebridge_inbound_queue_depth 4\n")
	assert.Regexp(t, `carebridge_inbound_queue_oldest_age_seconds (89|9\d)\.`, body)
	assert.Contains(t, body, "carebridge_secure_sessions_active 7\n")

	// A failed read leaves the gauges out; the counters are still served.
	gauges.err = errors.New("database is locked")
	m.Inbound(InboundStored)
	body = scrape(t, m)
	assert.NotContains(t, body, "carebridge_inbound_queue_depth")
	assert.Contains(t, body, `carebridge_inbound_messages_total{result="stored"} 1`)
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler(nil, zerolog.Nop()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	return rec.Body.String()
}

func TestHealthAndReadiness(t *testing.T) {
	homeserverUp := true
	checks := []Check{
		{Name: "database", Run: func(context.Context) error { return nil }},
		{Name: "homeserver", Run: func(ctx context.Context) error {
			if !homeserverUp {
				return errors.New("unreachable: connection refused")
			}
			return nil
		}},
		{Name: "slow", Run: func(ctx context.Context) error {
			<-ctx.Done() // never answers: the timeout must end it
			return ctx.Err()
		}},
	}
	server, err := Listen("127.0.0.1:0", New(nil).Handler(checks[:2], zerolog.Nop()), zerolog.Nop())
	require.NoError(t, err)
	defer server.Close()
	base := "http://" + server.Addr()

	status, body := get(t, base+"/healthz")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok\n", body)

	status, body = get(t, base+"/readyz")
	assert.Equal(t, http.StatusOK, status, body)

	homeserverUp = false
	status, body = get(t, base+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	var res Readiness
	require.NoError(t, json.Unmarshal([]byte(body), &res))
	assert.False(t, res.Ready)
	assert.Equal(t, []string{"homeserver"}, res.Failed)
	assert.Equal(t, "ok", res.Checks["database"])

	start := time.Now()
	res = Ready(context.Background(), checks)
	assert.Less(t, time.Since(start), CheckTimeout+time.Second)
	assert.Equal(t, []string{"homeserver", "slow"}, res.Failed)

	status, _ = get(t, base+"/metrics")
	assert.Equal(t, http.StatusOK, status)
	_, err = Listen(server.Addr(), http.NotFoundHandler(), zerolog.Nop())
	assert.ErrorContains(t, err, "network.metrics.listen")
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestProfiling(t *testing.T) {
	server, err := Listen("127.0.0.1:0", WithProfiling(New(nil).Handler(nil, zerolog.Nop())), zerolog.Nop())
	require.NoError(t, err)
	defer server.Close()
	base := "http://" + server.Addr()

	status, body := get(t, base+"/debug/pprof/")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "goroutine")
	status, body = get(t, base+"/debug/pprof/heap?debug=1")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "heap profile")
	status, _ = get(t, base+"/healthz")
	assert.Equal(t, http.StatusOK, status, "the metrics routes stay")
	status, _ = get(t, base+"/metrics")
	assert.Equal(t, http.StatusOK, status)
	resp, err := http.Post(base+"/debug/pprof/heap", "text/plain", nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "only GET reaches the profiler")
}
