package main

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

type mssContent struct {
	RelatesTo struct {
		EventID string `json:"event_id"`
	} `json:"m.relates_to"`
	Status      string   `json:"status"`
	Message     string   `json:"message"`
	DeliveredTo []string `json:"delivered_to_users"`
}

// TestDeliveryStatus: Twilio's status callbacks become message statuses in the room:
// delivered as a delivery to the patient's ghost, undelivered as a failure with the
// reason in words (and a notice), and a late "sent" never turns the failure into success.
func TestDeliveryStatus(t *testing.T) { eachDB(t, runDeliveryStatus) }

func runDeliveryStatus(t *testing.T, kind string) {
	e, nurse, loginID, ctx := linkedEnv(t, kind, nil)
	var err error
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Is my appointment still on?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	ghost := "@sms_15551234567:" + e.hs.ServerName()

	mss := func(eventID string, match func(mssContent) bool) mssContent {
		t.Helper()
		var found mssContent
		_, err := nurse.WaitEvent(ctx, func(ev testenv.AgentEvent) bool {
			var c mssContent
			if ev.EventType != "com.beeper.message_send_status" || json.Unmarshal(ev.Content, &c) != nil {
				return false
			}
			if c.RelatesTo.EventID == eventID && match(c) {
				found = c
				return true
			}
			return false
		})
		require.NoError(t, err, "message status for %s", eventID)
		return found
	}

	// Delivered: the status names the patient's ghost as the recipient.
	delivered, _, err := nurse.Send(ctx, roomID, "Yes, tomorrow at 10.")
	require.NoError(t, err)
	got := mss(delivered, func(c mssContent) bool { return slices.Contains(c.DeliveredTo, ghost) })
	assert.Equal(t, "SUCCESS", got.Status)
	cb, err := e.fake.WaitForStatusCallback(ctx, func(c testenv.CallbackResult) bool { return c.MessageStatus == "delivered" })
	require.NoError(t, err)
	assert.Equal(t, e.br.URL()+"/_carebridge/twilio/"+loginID+"/status", cb.URL)
	assert.Equal(t, 204, cb.StatusCode)

	// Undelivered (unreachable handset): a failure in words, with a notice staff see.
	e.fake.SetDeliveryOutcome(patient, "undelivered", 30003)
	failed, _, err := nurse.Send(ctx, roomID, "Please confirm by replying YES.")
	require.NoError(t, err)
	got = mss(failed, func(c mssContent) bool { return strings.HasPrefix(c.Status, "FAIL") })
	assert.Equal(t, "Not delivered: the patient's phone is unreachable (switched off or out of coverage)", got.Message)
	_, err = nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.MsgType == "m.notice" && strings.Contains(m.Body, "phone is unreachable")
	})
	require.NoError(t, err)

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
	late := url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "MessageStatus": {"sent"}, "SmsStatus": {"sent"},
		"AccountSid": {accountSID}, "From": {clinicPhone}, "To": {patient}, "ApiVersion": {"2010-04-01"}}
	resp, err := e.fake.PostSigned(ctx, e.br.URL()+"/_carebridge/twilio/"+loginID+"/status", late, authToken)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, 204, resp.StatusCode)
	// A later text's status proves the late callback was processed before it; no SUCCESS for the failed one.
	e.fake.SetDeliveryOutcome(patient, "delivered", 0)
	after, _, err := nurse.Send(ctx, roomID, "Thanks!")
	require.NoError(t, err)
	mss(after, func(c mssContent) bool { return slices.Contains(c.DeliveredTo, ghost) })
	// Twilio's acceptance (SUCCESS, not yet delivered) precedes the failure; nothing follows it.
	var statuses []string
	for _, ev := range nurse.Events() {
		var c mssContent
		if json.Unmarshal(ev.Content, &c) == nil && c.RelatesTo.EventID == failed {
			statuses = append(statuses, c.Status)
		}
	}
	assert.Equal(t, []string{"SUCCESS", "FAIL_PERMANENT"}, statuses, "a late callback never turns a failure into a success")

	// A forged status callback is refused.
	resp, err = e.fake.PostSigned(ctx, e.br.URL()+"/_carebridge/twilio/"+loginID+"/status", late, "00000000000000000000000000000000")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, 403, resp.StatusCode)
}
