package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/sms"
)

// TestDeliveryStatus: what staff see in Element of each text, without Beeper's status
// events: the patient's read receipt once it was delivered, an encrypted notice replying
// to it when it was not delivered (the reason in words), and a late "delivered" never
// turns the failure into success.
func TestDeliveryStatus(t *testing.T) { eachDB(t, runDeliveryStatus) }

func runDeliveryStatus(t *testing.T, kind string) {
	e, nurse, loginID, ctx := linkedEnv(t, kind, nil)
	var err error
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Is my appointment still on?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	ghost := e.patientGhost(t, ctx, patient)

	receipt := func(eventID, from string) {
		t.Helper()
		_, err := nurse.WaitEvent(ctx, func(ev testenv.AgentEvent) bool {
			return ev.EventType == "m.receipt.m.read" && ev.EventID == eventID && ev.Sender == from
		})
		require.NoError(t, err, "read receipt of %s on %s", from, eventID)
	}
	hasReceipt := func(eventID, from string) bool {
		for _, ev := range nurse.Events() {
			if ev.EventType == "m.receipt.m.read" && ev.EventID == eventID && ev.Sender == from {
				return true
			}
		}
		return false
	}

	// Delivered: the patient's receipt.
	delivered, _, err := nurse.Send(ctx, roomID, "Yes, tomorrow at 10.")
	require.NoError(t, err)
	receipt(delivered, ghost)
	cb, err := e.fake.WaitForStatusCallback(ctx, func(c testenv.CallbackResult) bool { return c.MessageStatus == "delivered" })
	require.NoError(t, err)
	assert.Equal(t, sms.WithConnectionOverrides(e.br.URL()+"/_carebridge/twilio/"+loginID+"/status"), cb.URL,
		"the callback URL asks Twilio for retries")
	assert.Equal(t, 204, cb.StatusCode)

	// Undelivered (unreachable handset): an encrypted notice replying to the text, in words.
	e.fake.SetDeliveryOutcome(patient, "undelivered", 30003)
	failed, _, err := nurse.Send(ctx, roomID, "Please confirm by replying YES.")
	require.NoError(t, err)
	notice, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.MsgType == "m.notice" && strings.Contains(m.Body, "phone is unreachable")
	})
	require.NoError(t, err)
	assert.Equal(t, "⚠️ Not delivered: the patient's phone is unreachable (switched off or out of coverage)", notice.Body)
	assert.True(t, notice.Encrypted, "the homeserver holds the failure notice encrypted")

	// A late "sent" callback for the failed text (signed, as Twilio would send it) changes nothing.
	var sid string
	for _, m := range e.fake.Messages() {
		if m.Body == "nurse: Please confirm by replying YES." {
			sid = m.SID
		}
	}
	require.NotEmpty(t, sid)
	_, err = e.fake.WaitForStatusCallback(ctx, func(c testenv.CallbackResult) bool {
		return c.MessageSID == sid && c.MessageStatus == "undelivered"
	})
	require.NoError(t, err)
	late := url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "MessageStatus": {"delivered"}, "SmsStatus": {"delivered"},
		"AccountSid": {accountSID}, "From": {clinicPhone}, "To": {patient}, "ApiVersion": {"2010-04-01"}}
	resp, err := e.fake.PostSigned(ctx, e.br.URL()+"/_carebridge/twilio/"+loginID+"/status", late, authToken)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, 204, resp.StatusCode)
	// A later text's delivery proves the late callback was processed before it.
	e.fake.SetDeliveryOutcome(patient, "delivered", 0)
	after, _, err := nurse.Send(ctx, roomID, "Thanks!")
	require.NoError(t, err)
	receipt(after, ghost)
	assert.False(t, hasReceipt(failed, ghost), "a late callback never shows a failed text as delivered")
	notices := 0
	for _, m := range nurse.Messages() {
		if m.MsgType == "m.notice" {
			assert.True(t, m.Encrypted, "notice %q is encrypted", m.Body)
			if strings.Contains(m.Body, "Not delivered") {
				notices++
			}
		}
	}
	assert.Equal(t, 1, notices, "one notice for the failed text")
	for _, ev := range nurse.Events() {
		assert.NotEqual(t, "com.beeper.message_send_status", ev.EventType, "no status events by default: Element shows none")
	}

	// A forged status callback is refused.
	resp, err = e.fake.PostSigned(ctx, e.br.URL()+"/_carebridge/twilio/"+loginID+"/status", late, "00000000000000000000000000000000")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, 403, resp.StatusCode)
}
