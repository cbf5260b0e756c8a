package testenv

import (
	"io"
	"net/url"
	"strconv"
	"time"
)

// deliver walks an accepted message through its statuses, posting a signed status
// callback for each when the message has a StatusCallback. Twilio posts no callback
// for queued (when sending from a number) and never reports "sent" for a message that
// failed before reaching a carrier.
func (f *FakeTwilio) deliver(m *fakeTwilioMessage, authToken string, outcome fakeTwilioOutcome, delay time.Duration) {
	defer f.wg.Done()
	steps := []string{"sent", outcome.status}
	if outcome.status == "failed" {
		steps = []string{"failed"}
	}
	for _, status := range steps {
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(delay):
		}
		errorCode := 0
		if status == "undelivered" || status == "failed" {
			errorCode = outcome.errorCode
		}

		f.mu.Lock()
		now := time.Now().UTC()
		m.Status = status
		m.ErrorCode = errorCode
		m.updated = now
		if status == "sent" {
			m.sent = now
		}
		snap := m.snapshot()
		f.broadcastLocked()
		f.mu.Unlock()

		if snap.StatusCallback == "" {
			continue
		}
		params := url.Values{
			"AccountSid":    {snap.AccountSID},
			"ApiVersion":    {twilioAPIVersion},
			"From":          {snap.From},
			"MessageSid":    {snap.SID},
			"MessageStatus": {status},
			"SmsSid":        {snap.SID},
			"SmsStatus":     {status},
			"To":            {snap.To},
		}
		if snap.MessagingServiceSID != "" {
			params.Set("MessagingServiceSid", snap.MessagingServiceSID)
		}
		if errorCode != 0 {
			params.Set("ErrorCode", strconv.Itoa(errorCode))
		}
		res := CallbackResult{
			MessageSID:    snap.SID,
			URL:           snap.StatusCallback,
			MessageStatus: status,
			ErrorCode:     errorCode,
			Params:        cloneValues(params),
			SentAt:        time.Now().UTC(),
		}
		resp, err := f.PostSigned(f.ctx, snap.StatusCallback, params, authToken)
		if err != nil {
			res.Err = err
		} else {
			res.StatusCode = resp.StatusCode
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
		}
		if f.ctx.Err() != nil && err != nil {
			// Closed while posting: the test is over, nothing to record.
			return
		}
		f.mu.Lock()
		f.callbacks = append(f.callbacks, res)
		f.broadcastLocked()
		f.mu.Unlock()
	}
}
