package sms_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/sms"
)

// TestListInboundFindsTheTextsNoWebhookDelivered: the bridge is down (its webhook
// refuses connections), Twilio does not retry, and the texts are found in the message
// log, oldest first, across pages, each MMS with its media, as webhook forms.
func TestListInboundFindsTheTextsNoWebhookDelivered(t *testing.T) {
	fx := newTwilioFixture(t)
	fx.fake.SetLatency(0, 0)
	client, err := sms.NewTwilio(sms.TwilioOptions{AccountSID: fx.accountSID, AuthToken: fx.authToken, APIURL: fx.fake.URL(),
		Timeout: 5 * time.Second, ListPageSize: 4})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, client.ConfigureWebhooks(ctx, fx.numberSID, sms.NumberWebhooks{SMSURL: closedPortURL(t) + "/twilio/sms"}))

	_, err = fx.fake.SendInbound(ctx, testPatientNumber, testClinicNumber, "Sent before the gap")
	require.Error(t, err, "the bridge is down")
	time.Sleep(1100 * time.Millisecond) // Twilio's dates have whole seconds
	since := time.Now()
	var want []string
	for i := range 9 {
		res, err := fx.fake.SendInbound(ctx, testPatientNumber, testClinicNumber, fmt.Sprintf("Question %d about my refill", i+1))
		require.Error(t, err)
		assert.Equal(t, 1, res.Attempts, "not retried")
		want = append(want, res.MessageSID)
	}
	photo := fx.fake.AddMedia("image/png", []byte("\x89PNG\r\n\x1a\n not really a PNG"))
	mms, err := fx.fake.SendInbound(ctx, testPatientNumber, testClinicNumber, "Photo of the label", photo)
	require.Error(t, err)
	want = append(want, mms.MessageSID)
	_, err = fx.client.Send(ctx, &sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: "We are on it."})
	require.NoError(t, err)

	logged, err := client.ListInbound(ctx, testClinicNumber, since)
	require.NoError(t, err)
	var got []string
	for _, m := range logged {
		got = append(got, m.SID)
		assert.True(t, m.Received())
		assert.Equal(t, fx.accountSID, m.AccountSID)
		assert.Equal(t, testPatientNumber, m.From)
		assert.False(t, m.DateSent.Before(since.Truncate(time.Second)))
		in, err := sms.ParseInbound(m.WebhookForm())
		require.NoError(t, err, "the log gives what a webhook gives")
		assert.Equal(t, m.Body, in.Body)
	}
	assert.Equal(t, want, got, "oldest first, across three pages, nothing before since, no outbound text")

	last := logged[len(logged)-1]
	require.Len(t, last.Media, 1)
	assert.Equal(t, sms.Media{URL: mms.Params.Get("MediaUrl0"), ContentType: "image/png"}, last.Media[0],
		"the MMS's media as its webhook names them")
	form := last.WebhookForm()
	assert.Equal(t, "1", form.Get("NumMedia"))
	assert.Equal(t, mms.Params.Get("MediaUrl0"), form.Get("MediaUrl0"))

	none, err := client.ListInbound(ctx, "+15550009999", since)
	require.NoError(t, err)
	assert.Empty(t, none, "another number's log")
}

// TestListSentFindsATextWhoseAnswerWasLost: Twilio created a text but its answer never
// came back (the sender was killed); ListSent finds it among the texts to the patient,
// with none from before since, none to others and no inbound one.
func TestListSentFindsATextWhoseAnswerWasLost(t *testing.T) {
	fx := newTwilioFixture(t)
	fx.fake.SetLatency(0, 0)
	ctx := context.Background()
	send := func(body string) string {
		sent, err := fx.client.Send(ctx, &sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: body})
		require.NoError(t, err)
		return sent.SID
	}
	send("Sent before")
	time.Sleep(1100 * time.Millisecond) // Twilio's dates have whole seconds
	since := time.Now()
	first := send("Your appointment is at 3pm.")
	_, err := fx.client.Send(ctx, &sms.OutboundMessage{From: testClinicNumber, To: "+15550009999", Body: "Another patient"})
	require.NoError(t, err)
	_, err = fx.fake.SendInbound(ctx, testPatientNumber, testClinicNumber, "Thanks")
	require.Error(t, err, "no webhook configured; the text is in the log all the same")

	fx.fake.HangAnswers(testPatientNumber, time.Minute)
	hung, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	client, err := sms.NewTwilio(sms.TwilioOptions{AccountSID: fx.accountSID, AuthToken: fx.authToken, APIURL: fx.fake.URL(),
		Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	_, err = client.Send(hung, &sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: "Bring your insurance card."})
	require.Error(t, err, "the answer never came")
	fx.fake.HangAnswers(testPatientNumber, 0)

	logged, err := fx.client.ListSent(ctx, testClinicNumber, testPatientNumber, since)
	require.NoError(t, err)
	var bodies []string
	for _, m := range logged {
		bodies = append(bodies, m.Body)
		assert.Equal(t, testPatientNumber, m.To)
		assert.False(t, m.DateCreated.Before(since.Truncate(time.Second)))
	}
	// Oldest first by date_created, which has whole seconds: within one, Twilio's order.
	assert.ElementsMatch(t, []string{"Your appointment is at 3pm.", "Bring your insurance card."}, bodies)
	assert.Contains(t, []string{logged[0].SID, logged[1].SID}, first)
}

func TestFetchMessageReadsAStatusTheCallbackNeverBrought(t *testing.T) {
	fx := newTwilioFixture(t)
	fx.fake.SetLatency(0, 0)
	ctx := context.Background()
	fx.fake.SetDeliveryOutcome(testPatientNumber, "undelivered", 30003)
	sent, err := fx.client.Send(ctx, &sms.OutboundMessage{From: testClinicNumber, To: testPatientNumber, Body: "Your results are in.",
		StatusCallback: closedPortURL(t) + "/twilio/status"})
	require.NoError(t, err)
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = fx.fake.WaitForMessage(waitCtx, func(m testenv.FakeMessage) bool { return m.SID == sent.SID && m.Status == "undelivered" })
	require.NoError(t, err)

	m, err := fx.client.FetchMessage(ctx, sent.SID)
	require.NoError(t, err)
	assert.Equal(t, "undelivered", m.Status)
	assert.Equal(t, 30003, m.ErrorCode)
	assert.Equal(t, "outbound-api", m.Direction)
	assert.False(t, m.DateSent.IsZero())

	_, err = fx.client.FetchMessage(ctx, testenv.NewTwilioSID("SM"))
	require.ErrorIs(t, err, sms.ErrMessageNotFound)
}

// TestSignatureCoversTheConnectionOverrides: Twilio signs the webhook URL as configured,
// fragment included, though the request carries none.
func TestSignatureCoversTheConnectionOverrides(t *testing.T) {
	fx := newTwilioFixture(t)
	fx.fake.SetLatency(0, 0)
	rcv := newInboundReceiver(t, fx.authToken)
	ctx := context.Background()
	smsURL := sms.WithConnectionOverrides(rcv.server.URL + "/twilio/sms")
	assert.Equal(t, rcv.server.URL+"/twilio/sms#"+sms.ConnectionOverrides, smsURL)
	require.NoError(t, fx.client.ConfigureWebhooks(ctx, fx.numberSID, sms.NumberWebhooks{SMSURL: smsURL}))

	res, err := fx.fake.SendInbound(ctx, testPatientNumber, testClinicNumber, "Can I get an earlier slot?")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	assert.Len(t, rcv.received(), 1)

	signature := sms.SignWebhook(fx.authToken, smsURL, res.Params)
	assert.True(t, sms.ValidWebhookSignature(fx.authToken, rcv.server.URL+"/twilio/sms", res.Params, signature))
	assert.False(t, sms.ValidSignature(fx.authToken, rcv.server.URL+"/twilio/sms", res.Params, signature),
		"the URL without its fragment is not what Twilio signed")
}
