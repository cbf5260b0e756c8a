package twiliosim

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// What becomes of the bridge's texts. Twilio answers a send with "queued", then posts a
// status callback when the carrier took the text ("sent") and when the phone got it
// ("delivered"), or "undelivered" with an error code. It posts no callback for "queued"
// when a text is sent from a number, and neither does the simulator.
const (
	// UnreachableSuffix ends the simulated patient numbers whose phone is never reached:
	// their texts end "undelivered" with ErrorUnreachable, so the demo can show a failure.
	// FailNumber makes any other number fail, or one of these deliver.
	UnreachableSuffix = "0000"
	// ErrorUnreachable is Twilio's error 30003, unreachable destination handset.
	ErrorUnreachable = 30003
	// DefaultStatusDelay is the pause before each status callback when Options.StatusDelay is 0.
	DefaultStatusDelay = time.Second
)

// FailNumber makes the texts the bridge sends to the patient number `to` from now on end
// "undelivered" with Twilio's errorCode (such as 30003 unreachable handset, 30005 unknown
// number, 30006 landline, 30007 carrier filtering). An errorCode of 0 makes the number's
// texts be delivered, even when it ends in UnreachableSuffix.
func (s *Simulator) FailNumber(to string, errorCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[to] = errorCode
}

// failureLocked is the error code texts to the patient number end with, or 0.
func (s *Simulator) failureLocked(to string) int {
	if code, ok := s.failures[to]; ok {
		return code
	}
	if strings.HasSuffix(to, UnreachableSuffix) {
		return ErrorUnreachable
	}
	return 0
}

// Close stops the status callbacks still to come and waits for those being posted.
func (s *Simulator) Close() {
	// Under the lock, so that no Send starts reporting once Wait may have begun.
	s.mu.Lock()
	s.stop()
	s.mu.Unlock()
	s.callbacks.Wait()
}

// report walks an accepted text through "sent" to "delivered" or, when errorCode is set,
// "undelivered", a short pause before each; with a StatusCallback it posts each status
// there as Twilio does, signed with the sending account's auth token. Like Twilio by
// default, it does not post a callback again when the bridge does not answer 2xx.
func (s *Simulator) report(text Text, accountSID, authToken string, errorCode int) {
	defer s.callbacks.Done()
	final := "delivered"
	if errorCode != 0 {
		final = "undelivered"
	}
	for _, status := range []string{"sent", final} {
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(s.statusDelay):
		}
		code := 0
		if status == "undelivered" {
			code = errorCode
		}
		s.setStatus(text.To, text.SID, status, code)
		if text.StatusCallback == "" {
			continue
		}
		form := url.Values{
			"AccountSid":    {accountSID},
			"ApiVersion":    {"2010-04-01"},
			"From":          {text.From},
			"MessageSid":    {text.SID},
			"MessageStatus": {status},
			"SmsSid":        {text.SID},
			"SmsStatus":     {status},
			"To":            {text.To},
		}
		if code != 0 {
			form.Set("ErrorCode", strconv.Itoa(code))
		}
		_ = s.postSigned(s.ctx, text.StatusCallback, form, authToken)
	}
}

// setStatus records a text's status on the patient's phone. A text that was not
// delivered changes the thread's version, so the page marks it.
func (s *Simulator) setStatus(phone, sid, status string, errorCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	th := s.threads[phone]
	if th == nil {
		return
	}
	for i := range th.received {
		if th.received[i].SID == sid {
			th.received[i].Status = status
			th.received[i].ErrorCode = errorCode
			if errorCode != 0 {
				th.version++
			}
			return
		}
	}
}
