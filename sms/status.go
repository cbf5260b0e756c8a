package sms

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
)

// StatusCallback is one delivery update Twilio posts to an outbound message's
// StatusCallback URL. twilio-go has no type for it.
type StatusCallback struct {
	MessageSID string
	AccountSID string
	From       string
	To         string
	// Status is Twilio's MessageStatus, such as "sent", "delivered" or "undelivered".
	Status string
	// ErrorCode is Twilio's error code for an undelivered or failed message, else 0.
	ErrorCode int
}

// maxTwilioErrorCode bounds ErrorCode: Twilio's codes have five digits.
const maxTwilioErrorCode = 99999

// statusRanks orders Twilio's message statuses along a message's life. Inbound
// statuses (receiving, received) share the ladder so that a stray one is still ordered.
var statusRanks = map[string]int{
	"accepted":    1,
	"scheduled":   1,
	"queued":      1,
	"sending":     2,
	"receiving":   2,
	"sent":        3,
	"delivered":   4,
	"received":    4,
	"read":        5,
	"undelivered": 6,
	"failed":      6,
	"canceled":    6,
}

// ParseStatusCallback reads a status callback's form. It rejects what Twilio never
// sends: a malformed MessageSid or AccountSid, an unknown MessageStatus, or an ErrorCode
// that is not a Twilio error code. The errors wrap ErrInvalidWebhook.
func ParseStatusCallback(form url.Values) (*StatusCallback, error) {
	cb := &StatusCallback{
		MessageSID: form.Get("MessageSid"),
		AccountSID: form.Get("AccountSid"),
		From:       form.Get("From"),
		To:         form.Get("To"),
		Status:     form.Get("MessageStatus"),
	}
	switch {
	case !messageSIDPattern.MatchString(cb.MessageSID):
		return nil, fmt.Errorf("%w: MessageSid missing or malformed", ErrInvalidWebhook)
	case !accountSIDPattern.MatchString(cb.AccountSID):
		return nil, fmt.Errorf("%w: AccountSid missing or malformed", ErrInvalidWebhook)
	case StatusRank(cb.Status) == 0:
		return nil, fmt.Errorf("%w: MessageStatus %q unknown", ErrInvalidWebhook, truncate(cb.Status, 16))
	}
	if raw := form.Get("ErrorCode"); raw != "" {
		code, err := strconv.Atoi(raw)
		if err != nil || code < 0 || code > maxTwilioErrorCode {
			return nil, fmt.Errorf("%w: ErrorCode %q is not a Twilio error code", ErrInvalidWebhook, truncate(raw, 8))
		}
		cb.ErrorCode = code
	}
	return cb, nil
}

// Failed reports whether the message will not reach the patient: undelivered, failed or
// canceled.
func (cb *StatusCallback) Failed() bool { return statusFailed(cb.Status) }

// Final reports whether Twilio will normally send no further update for the message:
// delivered, undelivered, failed, read or canceled. "delivered" is final although a
// "read" may follow on channels with read receipts (RCS, WhatsApp).
func (cb *StatusCallback) Final() bool {
	switch cb.Status {
	case "delivered", "read":
		return true
	}
	return statusFailed(cb.Status)
}

func statusFailed(status string) bool {
	switch status {
	case "undelivered", "failed", "canceled":
		return true
	}
	return false
}

// StatusRank places a Twilio message status on a message's life, so that callbacks
// arriving out of order never move a message backwards: accepted, scheduled and queued
// (1) < sending (2) < sent (3) < delivered (4) < read (5) < undelivered, failed and
// canceled (6). Inbound "receiving" ranks with sending and "received" with delivered.
// Unknown statuses, the empty one included, rank 0.
func StatusRank(status string) int { return statusRanks[status] }

// StatusSupersedes reports whether a callback with newStatus should replace oldStatus as
// what the bridge shows for a message. A failure is terminal: nothing replaces it, so a
// late "sent" never hides an "undelivered". Otherwise only a higher rank replaces a lower
// one; an equal rank (a repeated callback) does not, and an unknown newStatus never does.
//
// A failure does replace "delivered" and "read". Twilio does not normally report a
// failure after delivery, but if a carrier corrects its receipt, the clinic is better
// served by a false alarm it can check than by a missed failure.
func StatusSupersedes(newStatus, oldStatus string) bool {
	if statusFailed(oldStatus) {
		return false
	}
	newRank := StatusRank(newStatus)
	return newRank != 0 && newRank > StatusRank(oldStatus)
}

// StatusesNotSuperseded lists the known statuses a callback with newStatus does not
// replace (StatusSupersedes false), sorted, so that the update can be one statement
// ("… WHERE status NOT IN (…)"): every other status, unknown ones included, is replaced.
// ok is false when newStatus replaces nothing (an unknown status).
func StatusesNotSuperseded(newStatus string) (kept []string, ok bool) {
	if StatusRank(newStatus) == 0 {
		return nil, false
	}
	for status := range statusRanks {
		if !StatusSupersedes(newStatus, status) {
			kept = append(kept, status)
		}
	}
	slices.Sort(kept)
	return kept, true
}
