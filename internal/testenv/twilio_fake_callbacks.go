package testenv

import (
	"net/http"
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
		// Retried only as the callback URL's connection overrides say, as by Twilio.
		call := f.callWithOverrides(f.ctx, http.MethodPost, snap.StatusCallback, params, authToken, newTwilioSID(""))
		res.StatusCode, res.Err, res.Attempts = call.StatusCode, call.Err, call.Attempts
		err := call.Err
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
