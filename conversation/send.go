package conversation

import (
	"context"
	"errors"
	"fmt"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
)

// Outgoing is a message from the staff side that is not a Matrix event of its own: a
// follow-up that came due, an integration's message.
type Outgoing struct {
	// Actor is who sends it, for the audit log (a staff member, an integration).
	Actor database.AuditActor
	// Sender is the name the patient sees in the secure chat.
	Sender string
	// Text is the message; Body, when set, is what is texted instead (e.g. signed "Kim: …").
	Text, Body string
	// Kind is the outbox kind of the text in SMS mode.
	Kind outbox.Kind
	// Secure puts the message into the secure chat whatever the conversation's mode.
	Secure bool
}

// Sent is where an outgoing message went.
type Sent struct {
	Via database.Mode
	// Secure is the secure chat's message (Via secure); SMS is Twilio's answer (Via sms).
	Secure *securechat.Message
	SMS    *sms.SentMessage
}

// Send sends a message by the conversation's mode: in secure mode (or when asked) it is
// kept for the secure chat and the patient alerted; in SMS mode it is texted at once
// through the outbox (the caller shows Twilio's answer). Refusals are *outbox.Refusal
// (opted out, too long, empty).
func (s *Service) Send(ctx context.Context, conv *database.Conversation, msg Outgoing) (*Sent, error) {
	if msg.Secure || conv.Mode == database.ModeSecure {
		kept, err := s.KeepForSecureChat(ctx, conv, msg.Actor, msg.Sender, msg.Text, "")
		if err != nil {
			return nil, err
		}
		return &Sent{Via: database.ModeSecure, Secure: kept}, nil
	}
	body := msg.Body
	if body == "" {
		body = msg.Text
	}
	sent, err := s.TextNow(ctx, conv, msg.Kind, body)
	if err != nil {
		return nil, err
	}
	return &Sent{Via: database.ModeSMS, SMS: sent}, nil
}

// newText is a text the bridge sends on its own to the conversation's patient. eventID is
// the room event it belongs to, if any.
func (s *Service) newText(conv *database.Conversation, kind outbox.Kind, body, eventID string) *outbox.Text {
	return &outbox.Text{LoginID: conv.LoginID, PortalID: conv.PortalID, From: conv.ClinicPhone, To: conv.PatientPhone,
		Body: body, Kind: kind, EventID: eventID, SenderMXID: s.BotMXID}
}

// Text queues a text the bridge sends on its own (an alert, a template, an automatic
// reply) in the conversation's turn. eventID is the room event it belongs to, if any; a
// later failure is a notice replying to it. A *outbox.Refusal says why not.
func (s *Service) Text(ctx context.Context, conv *database.Conversation, kind outbox.Kind, text, eventID string) error {
	return s.Texts.Enqueue(ctx, s.newText(conv, kind, text, eventID))
}

// TextNow texts the patient at once, whatever the conversation's mode (a one-time code
// the patient waits for), and returns Twilio's answer. A *outbox.Refusal says why not.
func (s *Service) TextNow(ctx context.Context, conv *database.Conversation, kind outbox.Kind, text string) (*sms.SentMessage, error) {
	return s.Texts.Send(ctx, s.newText(conv, kind, text, ""))
}

// SendErrorWords says in words why a text was not sent, for a room notice or a reply.
func SendErrorWords(err error) string {
	var sendErr *sms.SendError
	var refusal *outbox.Refusal
	switch {
	case errors.Is(err, outbox.ErrNotLinked):
		return "the clinic number is no longer linked"
	case errors.As(err, &sendErr):
		return sendErr.Describe()
	case errors.As(err, &refusal):
		return refusal.Words
	}
	return "the text could not be sent"
}

// NotSentWords is the notice staff read when a text of kind was not sent.
func NotSentWords(kind outbox.Kind, err error) string {
	if kind == outbox.KindStaffReply {
		return "⚠️ Not sent: " + SendErrorWords(err)
	}
	return fmt.Sprintf("⚠️ The %s was not texted to the patient: %s", kind.Words(), SendErrorWords(err))
}
