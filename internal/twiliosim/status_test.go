package twiliosim_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twilio/twilio-go/client"

	"github.com/carebridge/carebridge/internal/twiliosim"
	"github.com/carebridge/carebridge/sms"
)

const (
	statusAccountSID = "AC7d2c9e4b1a3f5d6e8c0b2a4f6e8d0c1b"
	statusAuthToken  = "3c5e7a9b1d2f4a6c8e0b1d3f5a7c9e2b"
	statusPath       = "/_carebridge/twilio/login1/status"
	unreachable      = "+15551230000"
)

// statusCallback is one status callback as the bridge received it.
type statusCallback struct {
	form      url.Values
	validSign bool
}

// statusReceiver stands in for the bridge's status webhook: it checks each callback's
// signature with twilio-go's validator, as the bridge does, and answers 204.
type statusReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []statusCallback
}

func newStatusReceiver(t *testing.T) *statusReceiver {
	t.Helper()
	rcv := &statusReceiver{}
	validator := client.NewRequestValidator(statusAuthToken)
	rcv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !assert.NoError(t, r.ParseForm()) || !assert.Equal(t, statusPath, r.URL.Path) {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		params := make(map[string]string, len(r.PostForm))
		for k, v := range r.PostForm {
			params[k] = v[0]
		}
		valid := validator.Validate("http://"+r.Host+r.URL.RequestURI(), params, r.Header.Get("X-Twilio-Signature"))
		rcv.mu.Lock()
		rcv.got = append(rcv.got, statusCallback{form: r.PostForm, validSign: valid})
		rcv.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.srv.Close)
	return rcv
}

func (rcv *statusReceiver) url() string { return rcv.srv.URL + statusPath }

func (rcv *statusReceiver) callbacks() []statusCallback {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]statusCallback(nil), rcv.got...)
}

// waitFor waits until n callbacks arrived and returns them.
func (rcv *statusReceiver) waitFor(t *testing.T, n int) []statusCallback {
	t.Helper()
	require.Eventually(t, func() bool { return len(rcv.callbacks()) >= n }, 5*time.Second, 5*time.Millisecond)
	got := rcv.callbacks()
	require.Len(t, got, n)
	return got
}

// statusesOf is each callback's MessageStatus, checking on the way that the bridge's
// parser accepts it and that it is signed with the sending account's auth token.
func statusesOf(t *testing.T, callbacks []statusCallback, sid, to string, errorCode int) []string {
	t.Helper()
	statuses := make([]string, len(callbacks))
	for i, got := range callbacks {
		assert.True(t, got.validSign, "twilio-go's validator accepts the signature of %v", got.form)
		cb, err := sms.ParseStatusCallback(got.form)
		require.NoError(t, err)
		assert.Equal(t, sid, cb.MessageSID)
		assert.Equal(t, statusAccountSID, cb.AccountSID)
		assert.Equal(t, simClinic, cb.From)
		assert.Equal(t, to, cb.To)
		assert.Equal(t, sid, got.form.Get("SmsSid"))
		assert.Equal(t, cb.Status, got.form.Get("SmsStatus"))
		assert.Equal(t, "2010-04-01", got.form.Get("ApiVersion"))
		if cb.Failed() {
			assert.Equal(t, errorCode, cb.ErrorCode)
		} else {
			assert.Empty(t, got.form.Get("ErrorCode"), "only a failure carries an error code")
		}
		statuses[i] = cb.Status
	}
	return statuses
}

func sendWithCallback(t *testing.T, sim *twiliosim.Simulator, to, callback string) string {
	t.Helper()
	sent, err := sim.Account(statusAccountSID, statusAuthToken).Send(context.Background(),
		&sms.OutboundMessage{From: simClinic, To: to, Body: "Your results are ready.", StatusCallback: callback})
	require.NoError(t, err)
	assert.Equal(t, "queued", sent.Status)
	return sent.SID
}

func inboxStatus(sim *twiliosim.Simulator, phone, sid string) (string, int) {
	for _, text := range sim.Inbox(phone) {
		if text.SID == sid {
			return text.Status, text.ErrorCode
		}
	}
	return "", 0
}

func TestAcceptedTextIsReportedSentThenDelivered(t *testing.T) {
	rcv := newStatusReceiver(t)
	sim := newSimulator(t, twiliosim.Options{StatusDelay: 20 * time.Millisecond})
	start := time.Now()
	sid := sendWithCallback(t, sim, simPatient, rcv.url())
	status, _ := inboxStatus(sim, simPatient, sid)
	assert.Equal(t, "queued", status, "Twilio posts no callback for queued: the answer to the send says it")

	got := rcv.waitFor(t, 2)
	assert.Equal(t, []string{"sent", "delivered"}, statusesOf(t, got, sid, simPatient, 0))
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "each status comes after the delay")
	status, code := inboxStatus(sim, simPatient, sid)
	assert.Equal(t, "delivered", status)
	assert.Zero(t, code)
}

func TestNumberEndingInUnreachableSuffixIsUndelivered(t *testing.T) {
	require.True(t, strings.HasSuffix(unreachable, twiliosim.UnreachableSuffix))
	rcv := newStatusReceiver(t)
	h := newSimHarness(t)
	sim := h.sim
	sid := sendWithCallback(t, sim, unreachable, rcv.url())

	got := rcv.waitFor(t, 2)
	assert.Equal(t, []string{"sent", "undelivered"}, statusesOf(t, got, sid, unreachable, twiliosim.ErrorUnreachable))
	assert.Equal(t, "30003", got[1].form.Get("ErrorCode"))
	require.Eventually(t, func() bool { s, _ := inboxStatus(sim, unreachable, sid); return s == "undelivered" }, 5*time.Second, 5*time.Millisecond)
	_, code := inboxStatus(sim, unreachable, sid)
	assert.Equal(t, twiliosim.ErrorUnreachable, code)

	// The phone page marks the text as never received.
	_, page := h.get(t, simBase+"/phone/"+unreachable)
	assert.Contains(t, page, "Not delivered to this phone (Twilio error 30003)")
	_, page = h.get(t, simBase+"/phone/"+simPatient)
	assert.NotContains(t, page, "Not delivered")
}

func TestFailNumberChoosesTheError(t *testing.T) {
	rcv := newStatusReceiver(t)
	sim := newSimulator(t, twiliosim.Options{StatusDelay: 5 * time.Millisecond})
	sim.FailNumber(simPatient, 30007)
	sim.FailNumber(unreachable, 0)

	filtered := sendWithCallback(t, sim, simPatient, rcv.url())
	got := rcv.waitFor(t, 2)
	assert.Equal(t, []string{"sent", "undelivered"}, statusesOf(t, got, filtered, simPatient, 30007))

	reached := sendWithCallback(t, sim, unreachable, rcv.url())
	got = rcv.waitFor(t, 4)
	assert.Equal(t, []string{"sent", "delivered"}, statusesOf(t, got[2:], reached, unreachable, 0),
		"FailNumber with 0 makes even an unreachable-looking number deliver")
}

func TestTextWithoutStatusCallbackStillDelivers(t *testing.T) {
	rcv := newStatusReceiver(t)
	sim := newSimulator(t, twiliosim.Options{StatusDelay: 5 * time.Millisecond})
	sid := sendWithCallback(t, sim, simPatient, "")
	require.Eventually(t, func() bool { s, _ := inboxStatus(sim, simPatient, sid); return s == "delivered" }, 5*time.Second, 5*time.Millisecond)
	assert.Empty(t, rcv.callbacks())
}

func TestCloseStopsPendingCallbacks(t *testing.T) {
	rcv := newStatusReceiver(t)
	sim := twiliosim.New(twiliosim.Options{StatusDelay: time.Hour})
	sendWithCallback(t, sim, simPatient, rcv.url())
	done := make(chan struct{})
	go func() { sim.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the callbacks' delay")
	}
	// A text sent after Close is kept but never reported.
	sid := sendWithCallback(t, sim, simPatient, rcv.url())
	status, _ := inboxStatus(sim, simPatient, sid)
	assert.Equal(t, "queued", status)
	assert.Empty(t, rcv.callbacks())
}
