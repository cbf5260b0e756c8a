package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/carebridge/carebridge/sms"
)

// scriptedReceiver answers webhooks with the statuses of answers in turn (200 once they
// run out) and records each request with whether its signature is valid for signedURL.
type scriptedReceiver struct {
	srv     *httptest.Server
	answers []int
	calls   atomic.Int32

	mu   sync.Mutex
	got  []url.Values
	sigs []string
}

func newScriptedReceiver(t *testing.T, answers ...int) *scriptedReceiver {
	rcv := &scriptedReceiver{answers: answers}
	rcv.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.NoError(t, r.ParseForm())
		n := int(rcv.calls.Add(1))
		rcv.mu.Lock()
		rcv.got = append(rcv.got, r.PostForm)
		rcv.sigs = append(rcv.sigs, r.Header.Get("X-Twilio-Signature"))
		rcv.mu.Unlock()
		assert.Empty(t, r.URL.Fragment, "a fragment never reaches the server")
		if n <= len(rcv.answers) && rcv.answers[n-1] != http.StatusOK {
			http.Error(w, "not now", rcv.answers[n-1])
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, sms.EmptyTwiML)
	}))
	t.Cleanup(rcv.srv.Close)
	return rcv
}

// validFor reports whether request i was signed for signedURL.
func (rcv *scriptedReceiver) validFor(authToken string, i int, signedURL string) bool {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	params := map[string]string{}
	for k, v := range rcv.got[i] {
		params[k] = v[0]
	}
	validator := client.NewRequestValidator(authToken)
	return validator.Validate(signedURL, params, rcv.sigs[i])
}

func setNumberWebhooks(t *testing.T, fx fakeTwilioFixture, smsURL, fallbackURL string) {
	t.Helper()
	_, err := fx.api.UpdateIncomingPhoneNumber(fx.numberSID, (&openapi.UpdateIncomingPhoneNumberParams{}).
		SetSmsUrl(smsURL).SetSmsMethod("POST").SetSmsFallbackUrl(fallbackURL).SetSmsFallbackMethod("POST"))
	require.NoError(t, err)
}

func TestFakeTwilioDoesNotRetryAFailedSMSWebhook(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	fx.fake.SetLatency(0, 0)
	rcv := newScriptedReceiver(t, http.StatusServiceUnavailable, http.StatusServiceUnavailable)
	setNumberWebhooks(t, fx, rcv.srv.URL+"/sms", "")

	res, err := fx.fake.SendInbound(context.Background(), fakeTestPatient, fakeTestClinicNumber, "Is the clinic open today?")
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Equal(t, 1, res.Attempts, "Twilio logs 11200 and does not call again")
	assert.EqualValues(t, 1, rcv.calls.Load())

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	setNumberWebhooks(t, fx, down.URL+"/sms", "")
	res, err = fx.fake.SendInbound(context.Background(), fakeTestPatient, fakeTestClinicNumber, "Hello?")
	require.Error(t, err, "no answer at all")
	assert.Equal(t, 1, res.Attempts)

	logged := fx.fake.InboundMessages()
	require.Len(t, logged, 2, "both texts are in the message log all the same")
	assert.Equal(t, "received", logged[0].Status)
}

func TestFakeTwilioRetriesAsTheConnectionOverridesSay(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	fx.fake.SetLatency(0, 0)
	rcv := newScriptedReceiver(t, http.StatusServiceUnavailable, http.StatusBadGateway)
	smsURL := rcv.srv.URL + "/sms?clinic=7#rc=3&rp=5xx,ct"
	setNumberWebhooks(t, fx, smsURL, "")

	res, err := fx.fake.SendInbound(context.Background(), fakeTestPatient, fakeTestClinicNumber, "Can I come at 3?")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, 3, res.Attempts, "two 5xx retried, the third answered")
	for i := range 3 {
		assert.True(t, rcv.validFor(fx.authToken, i, smsURL), "signed over the URL as configured, fragment included")
		assert.False(t, rcv.validFor(fx.authToken, i, strings.TrimSuffix(smsURL, "#rc=3&rp=5xx,ct")))
	}

	t.Run("a 4xx is not retried unless the policy names it", func(t *testing.T) {
		rcv := newScriptedReceiver(t, http.StatusForbidden)
		setNumberWebhooks(t, fx, rcv.srv.URL+"/sms#rc=5&rp=5xx,ct,rt", "")
		res, err := fx.fake.SendInbound(context.Background(), fakeTestPatient, fakeTestClinicNumber, "Hi")
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		assert.Equal(t, 1, res.Attempts)
	})
	t.Run("a refused connection is retried rc times", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close()
		setNumberWebhooks(t, fx, down.URL+"/sms#rc=2&rp=ct", "")
		res, err := fx.fake.SendInbound(context.Background(), fakeTestPatient, fakeTestClinicNumber, "Hi")
		require.Error(t, err)
		assert.Equal(t, 3, res.Attempts)
	})
	t.Run("an override out of range is refused", func(t *testing.T) {
		setNumberWebhooks(t, fx, rcv.srv.URL+"/sms#rc=9", "")
		_, err := fx.fake.SendInbound(context.Background(), fakeTestPatient, fakeTestClinicNumber, "Hi")
		require.ErrorContains(t, err, "rc")
	})
}

func TestFakeTwilioCallsTheFallbackURLWhenTheWebhookFails(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	fx.fake.SetLatency(0, 0)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	fallback := newScriptedReceiver(t)
	smsURL, fallbackURL := down.URL+"/sms#rc=1&rp=ct", fallback.srv.URL+"/sms#rc=1&rp=ct"
	setNumberWebhooks(t, fx, smsURL, fallbackURL)

	res, err := fx.fake.SendInbound(context.Background(), fakeTestPatient, fakeTestClinicNumber, "Running late")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, 2, res.Attempts)
	assert.Equal(t, fallbackURL, res.FallbackURL)
	assert.Equal(t, 1, res.FallbackAttempts)
	require.EqualValues(t, 1, fallback.calls.Load())
	got := fallback.got[0]
	assert.Equal(t, res.MessageSID, got.Get("MessageSid"))
	assert.Equal(t, "11200", got.Get("ErrorCode"))
	assert.Equal(t, smsURL, got.Get("ErrorUrl"))
	assert.True(t, fallback.validFor(fx.authToken, 0, fallbackURL))
}

// listPage is one page of GET .../Messages.json as JSON.
type listPage struct {
	Messages []map[string]any `json:"messages"`
	NextPage *string          `json:"next_page_uri"`
	PageSize int              `json:"page_size"`
	Page     int              `json:"page"`
	Start    int              `json:"start"`
	End      int              `json:"end"`
}

func getPage(t *testing.T, fx fakeTwilioFixture, uri string) listPage {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fx.fake.URL()+uri, nil)
	require.NoError(t, err)
	req.SetBasicAuth(fx.accountSID, fx.authToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var page listPage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
	return page
}

func TestFakeTwilioListsTheMessageLogNewestFirstInPages(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	fx.fake.SetLatency(0, 0)
	rcv := newScriptedReceiver(t)
	setNumberWebhooks(t, fx, rcv.srv.URL+"/sms", "")
	ctx := context.Background()
	startedAt := time.Now().UTC().Truncate(time.Second)
	var sids []string
	for i := range 7 {
		res, err := fx.fake.SendInbound(ctx, fakeTestPatient, fakeTestClinicNumber, fmt.Sprintf("text %d", i))
		require.NoError(t, err)
		sids = append(sids, res.MessageSID)
	}
	_, err := fx.api.CreateMessage((&openapi.CreateMessageParams{}).SetFrom(fakeTestClinicNumber).SetTo(fakeTestPatient).SetBody("Yes, see you at 3."))
	require.NoError(t, err)

	// Raw pages: newest first, linked by next_page_uri, RFC 2822 dates.
	q := url.Values{"To": {fakeTestClinicNumber}, "PageSize": {"3"}}
	uri := twilioAccountsPrefix + fx.accountSID + "/Messages.json?" + q.Encode()
	var listed []string
	for pages := 0; uri != ""; pages++ {
		require.Less(t, pages, 3, "7 messages in pages of 3")
		page := getPage(t, fx, uri)
		assert.Equal(t, 3, page.PageSize)
		assert.Equal(t, pages, page.Page)
		for _, m := range page.Messages {
			listed = append(listed, m["sid"].(string))
			assert.Equal(t, "inbound", m["direction"])
			assert.Equal(t, "received", m["status"])
			sent, err := time.Parse(time.RFC1123Z, m["date_sent"].(string))
			require.NoError(t, err, "date_sent is RFC 2822")
			assert.False(t, sent.Before(startedAt))
		}
		uri = ""
		if page.NextPage != nil {
			uri = *page.NextPage
			assert.Contains(t, uri, "PageToken=PA")
		}
	}
	want := make([]string, len(sids))
	for i, sid := range sids {
		want[len(sids)-1-i] = sid
	}
	assert.Equal(t, want, listed, "newest first, each once")

	// twilio-go follows the pages itself; the outbound reply is in the log too.
	all, err := fx.api.ListMessage((&openapi.ListMessageParams{}).SetPageSize(2))
	require.NoError(t, err)
	assert.Len(t, all, 8)
	assert.Equal(t, "outbound-api", *all[0].Direction, "the reply is the newest (or not sent yet, which Twilio lists first)")

	none, err := fx.api.ListMessage((&openapi.ListMessageParams{}).SetTo(fakeTestClinicNumber).SetDateSentAfter(time.Now().Add(time.Hour)))
	require.NoError(t, err)
	assert.Empty(t, none, "DateSent> after every message")
	today, err := fx.api.ListMessage((&openapi.ListMessageParams{}).SetTo(fakeTestClinicNumber).SetDateSentAfter(startedAt))
	require.NoError(t, err)
	assert.Len(t, today, 7)
}
