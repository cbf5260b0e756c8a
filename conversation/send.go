package conversation

import (
	"context"

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
	sent, err := s.Texts.Send(ctx, &outbox.Text{LoginID: conv.LoginID, PortalID: conv.PortalID, From: conv.ClinicPhone,
		To: conv.PatientPhone, Body: body, Kind: msg.Kind, SenderMXID: s.BotMXID})
	if err != nil {
		return nil, err
	}
	return &Sent{Via: database.ModeSMS, SMS: sent}, nil
}
