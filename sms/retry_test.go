package sms_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/sms"
)

func TestSendWithRetry(t *testing.T) {
	const sid, token = "AC0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	fake := testenv.NewFakeTwilio()
	defer fake.Close()
	fake.AddAccount(sid, token)
	fake.AddNumber(sid, "+15550001111")
	client, err := sms.NewTwilio(sms.TwilioOptions{AccountSID: sid, AuthToken: token, APIURL: fake.URL(), Timeout: 5 * time.Second})
	require.NoError(t, err)
	policy := sms.RetryPolicy{Attempts: 3, Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}
	msg := func(body string) *sms.OutboundMessage {
		return &sms.OutboundMessage{From: "+15550001111", To: "+15551234567", Body: body}
	}
	ctx := context.Background()

	// Every second request answers 503: the second send is retried once and sent once.
	fake.FailEveryNthSend(2)
	_, attempts, err := sms.SendWithRetry(ctx, client, msg("first"), policy)
	require.NoError(t, err)
	assert.Equal(t, 1, attempts)
	_, attempts, err = sms.SendWithRetry(ctx, client, msg("second"), policy)
	require.NoError(t, err)
	assert.Equal(t, 2, attempts)
	bodies := map[string]int{}
	for _, m := range fake.Messages() {
		bodies[m.Body]++
	}
	assert.Equal(t, map[string]int{"first": 1, "second": 1}, bodies, "a retried text is sent exactly once")

	// Twilio down for good: gives up after the policy's attempts with a sentence for staff.
	fake.FailEveryNthSend(1)
	_, attempts, err = sms.SendWithRetry(ctx, client, msg("third"), policy)
	var sendErr *sms.SendError
	require.True(t, errors.As(err, &sendErr))
	assert.Equal(t, 3, attempts)
	assert.True(t, sendErr.Transient())
	assert.Contains(t, sendErr.Describe(), "temporarily unavailable")

	// A permanent refusal is not retried.
	fake.FailEveryNthSend(0)
	_, attempts, err = sms.SendWithRetry(ctx, client, &sms.OutboundMessage{From: "+15550001111", To: "555", Body: "x"}, policy)
	require.True(t, errors.As(err, &sendErr))
	assert.Equal(t, 1, attempts)
	assert.Equal(t, 21211, sendErr.Code)
	assert.False(t, sendErr.Transient())
}
