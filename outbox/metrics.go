package outbox

import (
	"context"
	"time"

	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/sms"
)

// Timed wraps a clinic number's provider so that m observes the duration of each Twilio
// API request; without metrics (m nil) it returns p.
func Timed(p sms.Provider, m *metrics.Metrics) sms.Provider {
	if m == nil {
		return p
	}
	return &timedProvider{Provider: p, m: m}
}

// timedProvider observes the duration of each Twilio API request.
type timedProvider struct {
	sms.Provider
	m *metrics.Metrics
}

func (t *timedProvider) CheckAccount(ctx context.Context) error {
	start := time.Now()
	err := t.Provider.CheckAccount(ctx)
	t.m.TwilioRequest(metrics.OpCheckAccount, start, err)
	return err
}

func (t *timedProvider) LookupNumber(ctx context.Context, e164 string) (*sms.PhoneNumber, error) {
	start := time.Now()
	number, err := t.Provider.LookupNumber(ctx, e164)
	t.m.TwilioRequest(metrics.OpLookupNumber, start, err)
	return number, err
}

func (t *timedProvider) ConfigureWebhooks(ctx context.Context, numberSID string, hooks sms.NumberWebhooks) error {
	start := time.Now()
	err := t.Provider.ConfigureWebhooks(ctx, numberSID, hooks)
	t.m.TwilioRequest(metrics.OpConfigureWebhooks, start, err)
	return err
}

func (t *timedProvider) ListInbound(ctx context.Context, to string, since time.Time) ([]*sms.LoggedMessage, error) {
	start := time.Now()
	msgs, err := t.Provider.ListInbound(ctx, to, since)
	t.m.TwilioRequest(metrics.OpListMessages, start, err)
	return msgs, err
}

func (t *timedProvider) FetchMessage(ctx context.Context, sid string) (*sms.LoggedMessage, error) {
	start := time.Now()
	msg, err := t.Provider.FetchMessage(ctx, sid)
	t.m.TwilioRequest(metrics.OpFetchMessage, start, err)
	return msg, err
}

func (t *timedProvider) ListSent(ctx context.Context, from, to string, since time.Time) ([]*sms.LoggedMessage, error) {
	start := time.Now()
	msgs, err := t.Provider.ListSent(ctx, from, to, since)
	t.m.TwilioRequest(metrics.OpListMessages, start, err)
	return msgs, err
}

func (t *timedProvider) Send(ctx context.Context, msg *sms.OutboundMessage) (*sms.SentMessage, error) {
	start := time.Now()
	sent, err := t.Provider.Send(ctx, msg)
	t.m.TwilioRequest(metrics.OpSend, start, err)
	return sent, err
}
