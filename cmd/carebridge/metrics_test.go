package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestMetrics runs the bridge with network.metrics.listen set: a patient text and a staff
// reply move the counters, no label carries a phone number, and /readyz follows the
// homeserver going away and coming back.
func TestMetrics(t *testing.T) {
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e, nurse, loginID, ctx := linkedEnv(t, "sqlite", func(cfg map[string]any) {
		cfg["network"].(map[string]any)["metrics"] = map[string]any{"listen": listen}
	})
	base := "http://" + listen

	status, body := httpGet(ctx, t, base+"/healthz")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok", strings.TrimSpace(body))
	status, _ = httpGet(ctx, t, base+"/debug/pprof/")
	assert.Equal(t, http.StatusNotFound, status, "the profiler is off unless network.metrics.pprof is set")

	res, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Hello, I need to refill my inhaler.")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == "Hello, I need to refill my inhaler." })
	require.NoError(t, err)
	_, _, err = nurse.Send(ctx, roomID, "We sent the refill to your pharmacy.")
	require.NoError(t, err)
	_, err = e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return m.To == patient })
	require.NoError(t, err)
	// A webhook without a signature is refused and counted by reason.
	resp, err := http.PostForm(e.br.InboundURL(loginID), res.Params)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	var scraped string
	require.Eventually(t, func() bool {
		_, scraped = httpGet(ctx, t, base+"/metrics")
		// The send is counted as it returns; the reply's wait ends just after, so a scrape
		// between the two sees one and not yet the other.
		return sample(scraped, `carebridge_outbound_messages_total{result="sent"}`) >= 1 &&
			sample(scraped, `carebridge_first_reply_seconds_count`) >= 1
	}, 30*time.Second, 200*time.Millisecond, "the staff reply is counted as sent and ends the patient's wait")
	assert.Equal(t, 1.0, sample(scraped, `carebridge_inbound_messages_total{result="stored"}`))
	assert.Equal(t, 1.0, sample(scraped, `carebridge_inbound_messages_total{result="rejected_signature"}`))
	assert.Equal(t, 1.0, sample(scraped, `carebridge_webhook_rejections_total{reason="signature",webhook="inbound"}`))
	assert.GreaterOrEqual(t, sample(scraped, `carebridge_inbound_deliveries_total{result="delivered"}`), 1.0)
	assert.GreaterOrEqual(t, sample(scraped, `carebridge_twilio_request_duration_seconds_count{operation="send",outcome="ok"}`), 1.0)
	assert.Equal(t, 1.0, sample(scraped, `carebridge_first_reply_seconds_count`))
	assert.Equal(t, 0.0, sample(scraped, `carebridge_inbound_queue_depth`))
	assert.Equal(t, 0.0, sample(scraped, `carebridge_secure_sessions_active`))
	for _, m := range regexp.MustCompile(`="([^"]*)"`).FindAllStringSubmatch(scraped, -1) {
		assert.NotRegexp(t, `\d{7,}`, m[1], "a label value looks like a phone number")
		assert.NotContains(t, m[1], "!", "a label value looks like a room ID")
		assert.NotContains(t, m[1], "@", "a label value looks like a user ID")
	}

	status, body = httpGet(ctx, t, base+"/readyz")
	require.Equal(t, http.StatusOK, status, body)

	// The homeserver goes away: not ready, and the answer names it.
	e.hs.Stop()
	var ready readiness
	require.Eventually(t, func() bool {
		status, body = httpGet(ctx, t, base+"/readyz")
		return status == http.StatusServiceUnavailable
	}, 15*time.Second, 200*time.Millisecond, "last answer: %s", body)
	require.NoError(t, json.Unmarshal([]byte(body), &ready))
	assert.False(t, ready.Ready)
	assert.Equal(t, []string{"homeserver"}, ready.Failed)
	assert.Equal(t, "ok", ready.Checks["database"])
	status, _ = httpGet(ctx, t, base+"/healthz")
	assert.Equal(t, http.StatusOK, status, "the process is still alive")

	// It comes back: ready again.
	e.hs.Restart()
	require.Eventually(t, func() bool {
		status, body = httpGet(ctx, t, base+"/readyz")
		return status == http.StatusOK
	}, 60*time.Second, 250*time.Millisecond, "last answer: %s", body)
}

// readiness is /readyz's answer.
type readiness struct {
	Ready  bool              `json:"ready"`
	Failed []string          `json:"failed"`
	Checks map[string]string `json:"checks"`
}

func httpGet(ctx context.Context, t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// sample is the value of one series in Prometheus's text format, or -1 when absent.
func sample(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if value, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}
