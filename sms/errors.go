package sms

import (
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/twilio/twilio-go/client"
)

// Named errors of the sms package.
var (
	ErrInvalidPhone    = errors.New("not a valid phone number")
	ErrInvalidWebhook  = errors.New("malformed Twilio webhook")
	ErrNumberNotOwned  = errors.New("the Twilio account does not own this phone number")
	ErrBadCredentials  = errors.New("Twilio refused the account SID or auth token")
	ErrTwilioRejection = errors.New("Twilio refused the request")
	ErrMessageNotFound = errors.New("the Twilio account has no such message")
)

// twilioErrorWords says in words what a Twilio error code means for a clinic.
var twilioErrorWords = map[int]string{
	20003: "Twilio refused the clinic number's credentials: link the number again with a valid auth token",
	21211: "the patient's number is not a valid phone number",
	21408: "texting this country is not enabled on the clinic's Twilio account",
	21606: "the clinic number cannot send texts (it is not an SMS-capable number of this Twilio account)",
	21610: "the patient has opted out by replying STOP; they must text START before they can receive texts again",
	21612: "Twilio cannot deliver a text from the clinic number to this number",
	21614: "the patient's number is not a mobile number and cannot receive texts",
	21617: "the message is longer than 1,600 characters",
	30003: "the patient's phone is unreachable (switched off or out of coverage)",
	30004: "the patient's phone blocked the message",
	30005: "the patient's number is unknown or no longer in service",
	30006: "the patient's number is a landline or cannot receive texts",
	30007: "the patient's carrier filtered the message as spam",
	30008: "the message failed for an unknown reason at the carrier",
	30034: "the clinic number is not registered for US texting (10DLC campaign missing)",
}

// DescribeTwilioError returns a sentence for staff about a Twilio error code.
func DescribeTwilioError(code int) string {
	if words, ok := twilioErrorWords[code]; ok {
		return words
	}
	return fmt.Sprintf("Twilio refused the message (error %d, see https://www.twilio.com/docs/errors/%d)", code, code)
}

// SendError is a refusal from Twilio for one outbound message.
type SendError struct {
	Code   int // Twilio error code, 0 when no answer came from Twilio
	Status int // HTTP status
	// NotSent is true when Twilio certainly did not create the message (it refused with
	// 429 or 5xx, or the connection was never made), so sending again cannot send twice.
	NotSent bool
	Err     error
}

func (e *SendError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("failed to send through Twilio: %v", e.Err)
	}
	return fmt.Sprintf("Twilio error %d: %s", e.Code, DescribeTwilioError(e.Code))
}

func (e *SendError) Unwrap() error { return e.Err }

// Transient reports whether sending the same message again may succeed without any
// risk of the patient receiving it twice.
func (e *SendError) Transient() bool {
	return e.NotSent
}

// Describe is the sentence staff see in the room.
func (e *SendError) Describe() string {
	switch {
	case e.Code == 0 && e.NotSent:
		return "Twilio could not be reached; the text was not sent"
	case e.Code == 0:
		return "Twilio did not answer in time; the text may or may not have been sent, check with the patient before resending"
	case e.Status == http.StatusTooManyRequests || e.Status >= 500:
		return fmt.Sprintf("Twilio is temporarily unavailable (HTTP %d, error %d); the text was not sent", e.Status, e.Code)
	}
	return DescribeTwilioError(e.Code)
}

func wrapTwilioError(err error) error {
	var restErr *client.TwilioRestError
	if errors.As(err, &restErr) {
		return &SendError{
			Code:    restErr.Code,
			Status:  restErr.Status,
			NotSent: restErr.Status == http.StatusTooManyRequests || restErr.Status >= 500,
			Err:     fmt.Errorf("%w: %s", ErrTwilioRejection, restErr.Message),
		}
	}
	// A refused or unresolvable connection never carried the request.
	var opErr *net.OpError
	var dnsErr *net.DNSError
	notSent := errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial")
	return &SendError{NotSent: notSent, Err: err}
}
