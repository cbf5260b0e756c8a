package sms_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/carebridge/carebridge/sms"
)

func TestDescribeTwilioError(t *testing.T) {
	tests := []struct {
		code int
		want string
	}{
		{21610, "the patient has opted out by replying STOP; they must text START before they can receive texts again"},
		{30003, "the patient's phone is unreachable (switched off or out of coverage)"},
		{30007, "the patient's carrier filtered the message as spam"},
		{30034, "the clinic number is not registered for US texting (10DLC campaign missing)"},
		{21211, "the patient's number is not a valid phone number"},
		{21617, "the message is longer than 1,600 characters"},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			assert.Equal(t, tt.want, sms.DescribeTwilioError(tt.code))
		})
	}
}

func TestDescribeTwilioErrorUnknownCode(t *testing.T) {
	for _, code := range []int{30410, 63016, 1, 99999} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			got := sms.DescribeTwilioError(code)
			assert.Contains(t, got, "error "+strconv.Itoa(code))
			assert.Contains(t, got, "https://www.twilio.com/docs/errors/"+strconv.Itoa(code))
			assert.Equal(t, fmt.Sprintf("Twilio refused the message (error %d, see https://www.twilio.com/docs/errors/%d)", code, code), got)
		})
	}
}

func TestSendError(t *testing.T) {
	rejection := fmt.Errorf("%w: Attempt to send to unsubscribed recipient", sms.ErrTwilioRejection)
	dialErr := errors.New("dial tcp 127.0.0.1:9: connect: connection refused")
	tests := []struct {
		name          string
		err           *sms.SendError
		wantError     string
		wantDescribe  string
		wantTransient bool
		wantUnwrap    error
	}{
		{
			name:          "opted out",
			err:           &sms.SendError{Code: 21610, Status: http.StatusBadRequest, Err: rejection},
			wantError:     "Twilio error 21610: the patient has opted out by replying STOP; they must text START before they can receive texts again",
			wantDescribe:  "the patient has opted out by replying STOP; they must text START before they can receive texts again",
			wantTransient: false,
			wantUnwrap:    rejection,
		},
		{
			// A delivery error code on a REST answer is final for that request.
			name:          "unreachable handset",
			err:           &sms.SendError{Code: 30003, Status: http.StatusBadRequest, Err: rejection},
			wantError:     "Twilio error 30003: the patient's phone is unreachable (switched off or out of coverage)",
			wantDescribe:  "the patient's phone is unreachable (switched off or out of coverage)",
			wantTransient: false,
			wantUnwrap:    rejection,
		},
		{
			name:          "carrier filtering",
			err:           &sms.SendError{Code: 30007, Status: http.StatusBadRequest, Err: rejection},
			wantError:     "Twilio error 30007: the patient's carrier filtered the message as spam",
			wantDescribe:  "the patient's carrier filtered the message as spam",
			wantTransient: false,
			wantUnwrap:    rejection,
		},
		{
			name:          "rate limited",
			err:           &sms.SendError{Code: 20429, Status: http.StatusTooManyRequests, NotSent: true, Err: rejection},
			wantError:     "Twilio error 20429: Twilio refused the message (error 20429, see https://www.twilio.com/docs/errors/20429)",
			wantDescribe:  "Twilio is temporarily unavailable (HTTP 429, error 20429); the text was not sent",
			wantTransient: true,
			wantUnwrap:    rejection,
		},
		{
			name:          "unknown code with a 5xx status",
			err:           &sms.SendError{Code: 20999, Status: http.StatusBadGateway, NotSent: true, Err: rejection},
			wantError:     "Twilio error 20999: Twilio refused the message (error 20999, see https://www.twilio.com/docs/errors/20999)",
			wantDescribe:  "Twilio is temporarily unavailable (HTTP 502, error 20999); the text was not sent",
			wantTransient: true,
			wantUnwrap:    rejection,
		},
		{
			name:          "not reached",
			err:           &sms.SendError{NotSent: true, Err: dialErr},
			wantError:     "failed to send through Twilio: dial tcp 127.0.0.1:9: connect: connection refused",
			wantDescribe:  "Twilio could not be reached; the text was not sent",
			wantTransient: true,
			wantUnwrap:    dialErr,
		},
		{
			name:          "answer lost",
			err:           &sms.SendError{Err: errors.New("i/o timeout")},
			wantError:     "failed to send through Twilio: i/o timeout",
			wantDescribe:  "Twilio did not answer in time; the text may or may not have been sent, check with the patient before resending",
			wantTransient: false,
			wantUnwrap:    nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.wantError, tt.err.Error())
			assert.Equal(t, tt.wantDescribe, tt.err.Describe())
			assert.Equal(t, tt.wantTransient, tt.err.Transient())
			if tt.wantUnwrap != nil {
				assert.Equal(t, tt.wantUnwrap, tt.err.Unwrap())
				assert.ErrorIs(t, tt.err, tt.wantUnwrap)
			}

			wrapped := fmt.Errorf("failed to send sms: %w", tt.err)
			var sendErr *sms.SendError
			assert.ErrorAs(t, wrapped, &sendErr)
			assert.Same(t, tt.err, sendErr)
		})
	}
}

func TestSendErrorIsRejection(t *testing.T) {
	rejected := &sms.SendError{Code: 21610, Status: http.StatusBadRequest, Err: fmt.Errorf("%w: unsubscribed", sms.ErrTwilioRejection)}
	assert.ErrorIs(t, rejected, sms.ErrTwilioRejection)
	unreached := &sms.SendError{Err: errors.New("i/o timeout")}
	assert.NotErrorIs(t, unreached, sms.ErrTwilioRejection)
}
