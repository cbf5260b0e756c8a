package conversation_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

func TestNotSentWordsSayWhyInOneWording(t *testing.T) {
	tooLong := &outbox.Refusal{Reason: outbox.ErrTooLong, Words: "this text would be 12 SMS segments"}
	for _, tc := range []struct {
		kind outbox.Kind
		err  error
		want string
	}{
		{outbox.KindStaffReply, tooLong, "⚠️ Not sent: this text would be 12 SMS segments"},
		{outbox.KindAlert, fmt.Errorf("failed: %w", outbox.ErrNotLinked),
			"⚠️ The secure message alert was not texted to the patient: the clinic number is no longer linked"},
		{outbox.KindTemplate, &sms.SendError{NotSent: true, Err: errors.New("dial tcp: refused")},
			"⚠️ The quick reply was not texted to the patient: Twilio could not be reached; the text was not sent"},
		{outbox.KindFollowUp, errors.New("boom"), "⚠️ The scheduled message was not texted to the patient: the text could not be sent"},
	} {
		assert.Equal(t, tc.want, conversation.NotSentWords(tc.kind, tc.err))
	}
	assert.Equal(t, "the clinic number is no longer linked", conversation.SendErrorWords(outbox.ErrNotLinked))
}
