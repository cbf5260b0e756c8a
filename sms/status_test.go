package sms_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/sms"
)

const (
	statusTestAccountSID = "AC6b1e0c2d9f8a7b6c5d4e3f2a1b0c9d8e"
	statusTestMessageSID = "SM2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b"
	statusTestMMSSID     = "MM7e5c3a1b9d8f6e4c2a0b8d6f4e2c0a9b"
)

// statusForm is a status callback as Twilio posts it for an SMS.
func statusForm(status string) url.Values {
	return url.Values{
		"AccountSid":    {statusTestAccountSID},
		"ApiVersion":    {"2010-04-01"},
		"From":          {"+15550001111"},
		"MessageSid":    {statusTestMessageSID},
		"MessageStatus": {status},
		"SmsSid":        {statusTestMessageSID},
		"SmsStatus":     {status},
		"To":            {"+15551234567"},
	}
}

func TestParseStatusCallback(t *testing.T) {
	tests := []struct {
		name string
		edit func(url.Values)
		want sms.StatusCallback
	}{
		{
			name: "sent",
			edit: func(url.Values) {},
			want: sms.StatusCallback{MessageSID: statusTestMessageSID, AccountSID: statusTestAccountSID,
				From: "+15550001111", To: "+15551234567", Status: "sent"},
		},
		{
			name: "delivered MMS",
			edit: func(f url.Values) {
				f.Set("MessageSid", statusTestMMSSID)
				f.Set("MessageStatus", "delivered")
			},
			want: sms.StatusCallback{MessageSID: statusTestMMSSID, AccountSID: statusTestAccountSID,
				From: "+15550001111", To: "+15551234567", Status: "delivered"},
		},
		{
			name: "undelivered with error code",
			edit: func(f url.Values) {
				f.Set("MessageStatus", "undelivered")
				f.Set("ErrorCode", "30003")
			},
			want: sms.StatusCallback{MessageSID: statusTestMessageSID, AccountSID: statusTestAccountSID,
				From: "+15550001111", To: "+15551234567", Status: "undelivered", ErrorCode: 30003},
		},
		{
			name: "failed with error code, through a messaging service",
			edit: func(f url.Values) {
				f.Set("MessageStatus", "failed")
				f.Set("ErrorCode", "30007")
				f.Set("MessagingServiceSid", "MG1234567890abcdef1234567890abcdef")
			},
			want: sms.StatusCallback{MessageSID: statusTestMessageSID, AccountSID: statusTestAccountSID,
				From: "+15550001111", To: "+15551234567", Status: "failed", ErrorCode: 30007},
		},
		{
			name: "no From or To",
			edit: func(f url.Values) {
				f.Del("From")
				f.Del("To")
				f.Set("MessageStatus", "read")
			},
			want: sms.StatusCallback{MessageSID: statusTestMessageSID, AccountSID: statusTestAccountSID, Status: "read"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := statusForm("sent")
			tt.edit(form)
			got, err := sms.ParseStatusCallback(form)
			require.NoError(t, err)
			assert.Equal(t, tt.want, *got)
		})
	}
}

func TestParseStatusCallbackAllStatuses(t *testing.T) {
	for _, status := range []string{"accepted", "scheduled", "queued", "sending", "sent", "delivered",
		"undelivered", "failed", "read", "canceled", "receiving", "received"} {
		t.Run(status, func(t *testing.T) {
			got, err := sms.ParseStatusCallback(statusForm(status))
			require.NoError(t, err)
			assert.Equal(t, status, got.Status)
		})
	}
}

func TestParseStatusCallbackRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(url.Values)
	}{
		{"no MessageSid", func(f url.Values) { f.Del("MessageSid") }},
		{"MessageSid of another kind", func(f url.Values) { f.Set("MessageSid", "PN2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b") }},
		{"MessageSid upper-case hex", func(f url.Values) { f.Set("MessageSid", "SM2C4E6A8B0D1F3E5A7C9B1D3F5E7A9C0B") }},
		{"MessageSid too short", func(f url.Values) { f.Set("MessageSid", "SM2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0") }},
		{"MessageSid with newline", func(f url.Values) { f.Set("MessageSid", statusTestMessageSID+"\n") }},
		{"no AccountSid", func(f url.Values) { f.Del("AccountSid") }},
		{"AccountSid malformed", func(f url.Values) { f.Set("AccountSid", "AC6b1e0c2d9f8a7b6c5d4e3f2a1b0c9d8") }},
		{"no MessageStatus", func(f url.Values) { f.Del("MessageStatus") }},
		{"only the legacy SmsStatus", func(f url.Values) { f.Del("MessageStatus"); f.Set("SmsStatus", "delivered") }},
		{"unknown MessageStatus", func(f url.Values) { f.Set("MessageStatus", "lost") }},
		{"MessageStatus capitalised", func(f url.Values) { f.Set("MessageStatus", "Delivered") }},
		{"ErrorCode not a number", func(f url.Values) { f.Set("ErrorCode", "unreachable") }},
		{"ErrorCode negative", func(f url.Values) { f.Set("ErrorCode", "-30003") }},
		{"ErrorCode too large", func(f url.Values) { f.Set("ErrorCode", "3000300") }},
		{"ErrorCode with space", func(f url.Values) { f.Set("ErrorCode", " 30003") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := statusForm("delivered")
			tt.edit(form)
			got, err := sms.ParseStatusCallback(form)
			require.ErrorIs(t, err, sms.ErrInvalidWebhook)
			assert.Nil(t, got)
		})
	}
}

func TestStatusCallbackFailedFinal(t *testing.T) {
	tests := []struct {
		status        string
		failed, final bool
	}{
		{"accepted", false, false},
		{"scheduled", false, false},
		{"queued", false, false},
		{"sending", false, false},
		{"sent", false, false},
		{"delivered", false, true},
		{"read", false, true},
		{"undelivered", true, true},
		{"failed", true, true},
		{"canceled", true, true},
		{"receiving", false, false},
		{"received", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			cb := &sms.StatusCallback{MessageSID: statusTestMessageSID, AccountSID: statusTestAccountSID, Status: tt.status}
			assert.Equal(t, tt.failed, cb.Failed(), "Failed")
			assert.Equal(t, tt.final, cb.Final(), "Final")
		})
	}
}

func TestStatusRank(t *testing.T) {
	ladder := [][]string{
		{"accepted", "scheduled", "queued"},
		{"sending"},
		{"sent"},
		{"delivered"},
		{"read"},
		{"undelivered", "failed", "canceled"},
	}
	for i, rung := range ladder {
		for _, status := range rung {
			assert.Equal(t, sms.StatusRank(rung[0]), sms.StatusRank(status), "%s ranks with %s", status, rung[0])
			assert.Positive(t, sms.StatusRank(status), status)
			if i > 0 {
				assert.Greater(t, sms.StatusRank(status), sms.StatusRank(ladder[i-1][0]), "%s outranks %s", status, ladder[i-1][0])
			}
		}
	}
	for _, unknown := range []string{"", "lost", "Delivered", "DELIVERED"} {
		assert.Zero(t, sms.StatusRank(unknown), unknown)
	}
}

func TestStatusSupersedes(t *testing.T) {
	tests := []struct {
		name      string
		old, new  string
		supersede bool
	}{
		{"first callback after send", "", "sent", true},
		{"queued then sent", "queued", "sent", true},
		{"accepted then queued", "accepted", "queued", false},
		{"sending then sent", "sending", "sent", true},
		{"sent then delivered", "sent", "delivered", true},
		{"delivered then read", "delivered", "read", true},
		{"queued then delivered, sent lost", "queued", "delivered", true},
		{"sent then undelivered", "sent", "undelivered", true},
		{"queued then failed", "queued", "failed", true},
		{"scheduled then canceled", "scheduled", "canceled", true},
		{"delivered then failed", "delivered", "failed", true},
		{"read then undelivered", "read", "undelivered", true},

		{"late sent after delivered", "delivered", "sent", false},
		{"late queued after sent", "sent", "queued", false},
		{"late delivered after read", "read", "delivered", false},
		{"repeated sent", "sent", "sent", false},
		{"repeated delivered", "delivered", "delivered", false},
		{"failed then late sent", "failed", "sent", false},
		{"undelivered then late delivered", "undelivered", "delivered", false},
		{"undelivered then read", "undelivered", "read", false},
		{"failed then undelivered", "failed", "undelivered", false},
		{"canceled then failed", "canceled", "failed", false},
		{"repeated failed", "failed", "failed", false},

		{"unknown new status", "sent", "lost", false},
		{"empty new status", "sent", "", false},
		{"unknown old status", "lost", "sent", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.supersede, sms.StatusSupersedes(tt.new, tt.old))
		})
	}
}

func TestStatusesNotSupersededAreExactlyTheOnesStatusSupersedesKeeps(t *testing.T) {
	statuses := []string{"", "lost", "accepted", "scheduled", "queued", "sending", "receiving", "sent", "delivered",
		"received", "read", "undelivered", "failed", "canceled"}
	for _, newStatus := range statuses {
		kept, ok := sms.StatusesNotSuperseded(newStatus)
		if sms.StatusRank(newStatus) == 0 {
			assert.False(t, ok, newStatus)
			assert.Empty(t, kept, newStatus)
			continue
		}
		require.True(t, ok, newStatus)
		assert.True(t, slices.IsSorted(kept), newStatus)
		for _, old := range statuses {
			// Unknown and empty stored statuses are never in the list: they are replaced.
			assert.Equal(t, !sms.StatusSupersedes(newStatus, old), slices.Contains(kept, old), "%s over %q", newStatus, old)
		}
	}
	kept, _ := sms.StatusesNotSuperseded("sent")
	assert.Equal(t, []string{"canceled", "delivered", "failed", "read", "received", "sent", "undelivered"}, kept)
	kept, _ = sms.StatusesNotSuperseded("undelivered")
	assert.Equal(t, []string{"canceled", "failed", "undelivered"}, kept)
}

// statusReceiver keeps the latest status of each message the way the bridge should:
// a callback replaces the status only when it supersedes it.
type statusReceiver struct {
	authToken string
	server    *httptest.Server

	mu     sync.Mutex
	latest map[string]*sms.StatusCallback
}

func (rcv *statusReceiver) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if !sms.ValidSignature(rcv.authToken, sms.PublicRequestURL(rcv.server.URL, r), r.PostForm, r.Header.Get("X-Twilio-Signature")) {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	cb, err := sms.ParseStatusCallback(r.PostForm)
	if err != nil {
		http.Error(w, "bad callback", http.StatusBadRequest)
		return
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if old := rcv.latest[cb.MessageSID]; old == nil || sms.StatusSupersedes(cb.Status, old.Status) {
		rcv.latest[cb.MessageSID] = cb
	}
	w.WriteHeader(http.StatusNoContent)
}

// TestStatusCallbackFromFakeTwilio sends through the strict fake and reads the status
// callbacks it posts, signed, for each delivery outcome.
func TestStatusCallbackFromFakeTwilio(t *testing.T) {
	fake := testenv.NewFakeTwilio()
	t.Cleanup(fake.Close)
	accountSID, authToken := testenv.NewTwilioSID("AC"), testenv.NewTwilioSID("")
	fake.AddAccount(accountSID, authToken)
	const clinic = "+15550002222"
	fake.AddNumber(accountSID, clinic)
	fake.SetDeliveryOutcome("+15557650001", "undelivered", 30003)
	fake.SetDeliveryOutcome("+15557650002", "failed", 30007)

	rcv := &statusReceiver{authToken: authToken, latest: map[string]*sms.StatusCallback{}}
	rcv.server = httptest.NewServer(http.HandlerFunc(rcv.serveHTTP))
	t.Cleanup(rcv.server.Close)

	client, err := sms.NewTwilio(sms.TwilioOptions{AccountSID: accountSID, AuthToken: authToken, APIURL: fake.URL(), Timeout: 5 * time.Second})
	require.NoError(t, err)

	tests := []struct {
		to        string
		status    string
		errorCode int
		callbacks int
	}{
		{"+15557650000", "delivered", 0, 2},
		{"+15557650001", "undelivered", 30003, 2},
		{"+15557650002", "failed", 30007, 1},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			sent, err := client.Send(ctx, &sms.OutboundMessage{From: clinic, To: tt.to,
				Body: "Your prescription is ready for pickup.", StatusCallback: rcv.server.URL + "/twilio/status"})
			require.NoError(t, err)
			_, err = fake.WaitForStatusCallback(ctx, func(cb testenv.CallbackResult) bool {
				return cb.MessageSID == sent.SID && cb.MessageStatus == tt.status
			})
			require.NoError(t, err)

			var posted []testenv.CallbackResult
			for _, cb := range fake.StatusCallbacks() {
				if cb.MessageSID == sent.SID {
					posted = append(posted, cb)
					assert.Equal(t, http.StatusNoContent, cb.StatusCode, "the receiver accepted %s", cb.MessageStatus)
				}
			}
			assert.Len(t, posted, tt.callbacks)

			rcv.mu.Lock()
			got := rcv.latest[sent.SID]
			rcv.mu.Unlock()
			require.NotNil(t, got)
			assert.Equal(t, sms.StatusCallback{MessageSID: sent.SID, AccountSID: accountSID, From: clinic, To: tt.to,
				Status: tt.status, ErrorCode: tt.errorCode}, *got)
			assert.True(t, got.Final())
			assert.Equal(t, tt.status != "delivered", got.Failed())

			// Replaying an earlier callback late must not move the message backwards.
			resp, err := fake.PostSigned(ctx, rcv.server.URL+"/twilio/status", posted[0].Params, authToken)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			rcv.mu.Lock()
			assert.Equal(t, tt.status, rcv.latest[sent.SID].Status)
			rcv.mu.Unlock()
		})
	}
}

func FuzzParseStatusCallback(f *testing.F) {
	for _, status := range []string{"sent", "delivered", "undelivered", "failed", "lost", ""} {
		form := statusForm(status)
		if status == "undelivered" {
			form.Set("ErrorCode", "30003")
		}
		f.Add(form.Encode())
	}
	f.Add("MessageSid=SM&AccountSid=AC&MessageStatus=sent&ErrorCode=9999999999999999999999")
	f.Add("ErrorCode=-1&MessageStatus=failed")
	f.Fuzz(func(t *testing.T, query string) {
		form, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		cb, err := sms.ParseStatusCallback(form)
		if err != nil {
			assert.ErrorIs(t, err, sms.ErrInvalidWebhook)
			assert.Nil(t, cb)
			return
		}
		assert.Regexp(t, `^(SM|MM)[0-9a-f]{32}$`, cb.MessageSID)
		assert.Regexp(t, `^AC[0-9a-f]{32}$`, cb.AccountSID)
		assert.Positive(t, sms.StatusRank(cb.Status))
		assert.GreaterOrEqual(t, cb.ErrorCode, 0)
		assert.False(t, sms.StatusSupersedes(cb.Status, cb.Status), "a status never supersedes itself")
		if cb.Failed() {
			assert.True(t, cb.Final())
		}
	})
}
