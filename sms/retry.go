package sms

import (
	"context"
	"errors"
	"time"
)

// RetryPolicy bounds how a send that Twilio certainly did not process is retried.
type RetryPolicy struct {
	Attempts int           // total attempts, at least 1
	Initial  time.Duration // wait before the second attempt; doubles each time
	Max      time.Duration // ceiling of one wait
}

// DefaultRetryPolicy retries three times over about seven seconds: long enough for a
// Twilio blip, short enough that staff see a failure while they are still looking.
var DefaultRetryPolicy = RetryPolicy{Attempts: 4, Initial: time.Second, Max: 4 * time.Second}

// SendWithRetry sends msg, retrying only refusals after which Twilio certainly did not
// create the message (429, 5xx, no connection), so the patient never gets it twice.
// It returns how many attempts were made.
func SendWithRetry(ctx context.Context, p Provider, msg *OutboundMessage, policy RetryPolicy) (*SentMessage, int, error) {
	wait := policy.Initial
	for attempt := 1; ; attempt++ {
		sent, err := p.Send(ctx, msg)
		var sendErr *SendError
		if err == nil || attempt >= policy.Attempts || !errors.As(err, &sendErr) || !sendErr.Transient() {
			return sent, attempt, err
		}
		select {
		case <-ctx.Done():
			return nil, attempt, err
		case <-time.After(wait):
		}
		wait = min(wait*2, policy.Max)
	}
}
