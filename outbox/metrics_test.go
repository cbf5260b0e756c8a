package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

type noGauges struct{}

func (noGauges) InboundQueue(context.Context) (int64, time.Time, error) { return 0, time.Time{}, nil }
func (noGauges) ActiveSessions(context.Context) (int64, error)          { return 0, nil }

func TestEveryTwilioRequestIsTimedByOperationAndOutcome(t *testing.T) {
	fake := &fakeProvider{inFlight: map[string]int{}, latest: map[string]*sms.LoggedMessage{}}
	assert.Same(t, sms.Provider(fake), outbox.Timed(fake, nil), "metrics off: the provider itself")

	m := metrics.New(noGauges{})
	p := outbox.Timed(fake, m)
	ctx := context.Background()
	require.NoError(t, p.CheckAccount(ctx))
	_, _ = p.LookupNumber(ctx, clinicPhone)
	require.NoError(t, p.ConfigureWebhooks(ctx, "PN1", sms.NumberWebhooks{}))
	_, err := p.ListInbound(ctx, clinicPhone, time.Now())
	require.NoError(t, err)
	_, err = p.FetchMessage(ctx, sid(1))
	assert.ErrorIs(t, err, sms.ErrMessageNotFound, "the provider's answer comes through")
	_, err = p.ListSent(ctx, clinicPhone, patient(1), time.Now())
	require.NoError(t, err)
	sent, err := p.Send(ctx, &sms.OutboundMessage{From: clinicPhone, To: patient(1), Body: "See you at 3."})
	require.NoError(t, err)
	assert.NotEmpty(t, sent.SID)
	fake.send = func(context.Context, *sms.OutboundMessage) error { return errors.New("twilio error 21610") }
	_, err = p.Send(ctx, &sms.OutboundMessage{From: clinicPhone, To: patient(2), Body: "See you at 4."})
	require.Error(t, err)

	families, err := m.Registry.Gather()
	require.NoError(t, err)
	counts := map[[2]string]uint64{}
	for _, family := range families {
		if family.GetName() != "carebridge_twilio_request_duration_seconds" {
			continue
		}
		for _, metric := range family.GetMetric() {
			var key [2]string
			for _, pair := range metric.GetLabel() {
				switch pair.GetName() {
				case "operation":
					key[0] = pair.GetValue()
				case "outcome":
					key[1] = pair.GetValue()
				}
			}
			counts[key] = metric.GetHistogram().GetSampleCount()
		}
	}
	assert.Equal(t, map[[2]string]uint64{
		{metrics.OpCheckAccount, "ok"}:      1,
		{metrics.OpLookupNumber, "ok"}:      1,
		{metrics.OpConfigureWebhooks, "ok"}: 1,
		{metrics.OpListMessages, "ok"}:      2, // the inbound log and the sent log
		{metrics.OpFetchMessage, "error"}:   1,
		{metrics.OpSend, "ok"}:              1,
		{metrics.OpSend, "error"}:           1,
	}, counts)
}
