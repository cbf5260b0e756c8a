package sms

import (
	"errors"
	"fmt"

	"github.com/twilio/twilio-go/client"
)

// Named errors of the sms package.
var (
	ErrInvalidPhone    = errors.New("not a valid phone number")
	ErrInvalidWebhook  = errors.New("malformed Twilio webhook")
	ErrNumberNotOwned  = errors.New("the Twilio account does not own this phone number")
	ErrBadCredentials  = errors.New("Twilio refused the account SID or auth token")
	ErrTwilioRejection = errors.New("Twilio refused the request")
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

// transientCodes are Twilio errors after which the same request may succeed later.
var transientCodes = map[int]bool{20429: true, 20500: true, 20503: true, 30001: true, 30003: true, 30008: true}

// DescribeTwilioError returns a sentence for staff about a Twilio error code.
func DescribeTwilioError(code int) string {
	if words, ok := twilioErrorWords[code]; ok {
		return words
	}
	return fmt.Sprintf("Twilio refused the message (error %d, see https://www.twilio.com/docs/errors/%d)", code, code)
}

// SendError is a refusal from Twilio for one outbound message.
type SendError struct {
	Code   int // Twilio error code, 0 when the request did not reach Twilio
	Status int // HTTP status
	Err    error
}

func (e *SendError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("failed to reach Twilio: %v", e.Err)
	}
	return fmt.Sprintf("Twilio error %d: %s", e.Code, DescribeTwilioError(e.Code))
}

func (e *SendError) Unwrap() error { return e.Err }

// Transient reports whether retrying the same message later may succeed.
func (e *SendError) Transient() bool {
	return e.Code == 0 || transientCodes[e.Code] || e.Status >= 500
}

// Describe is the sentence staff see in the room.
func (e *SendError) Describe() string {
	if e.Code == 0 {
		return "Twilio could not be reached; the text was not sent"
	}
	return DescribeTwilioError(e.Code)
}

func wrapTwilioError(err error) error {
	var restErr *client.TwilioRestError
	if errors.As(err, &restErr) {
		return &SendError{Code: restErr.Code, Status: restErr.Status, Err: fmt.Errorf("%w: %s", ErrTwilioRejection, restErr.Message)}
	}
	return &SendError{Err: err}
}
