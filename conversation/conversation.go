// Package conversation is the one entry point for what is done to a patient conversation:
// switching its mode, naming the patient, recording a date of birth, texting a secure
// link, ending links, keeping a staff message for the secure chat, sending a template by
// the conversation's mode. Matrix commands,
// the integration API and follow-ups are thin adapters over it.
//
// It depends on narrow interfaces — the conversation's room (Rooms), the outbox (Texts),
// the secure chat (SecureChat) — so what it decides is tested with fakes; the bridge
// implements Rooms over bridgev2.
package conversation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
)

// MaxPatientNameLength bounds a name staff give a patient (it becomes a display name).
const MaxPatientNameLength = 100

var (
	// ErrSameMode is returned by SetMode when the conversation is already in that mode.
	ErrSameMode = errors.New("the conversation is already in that mode")
	// ErrNameEmpty and ErrNameTooLong refuse a patient name.
	ErrNameEmpty   = errors.New("the name is empty")
	ErrNameTooLong = fmt.Errorf("the name is longer than %d characters", MaxPatientNameLength)
	// ErrNotShown is wrapped when a change was stored but the room could not show it yet.
	ErrNotShown = errors.New("stored, but the room could not show it yet")
)

// Rooms is what a conversation needs of its Matrix room. Every notice is end-to-end
// encrypted in an encrypted room.
type Rooms interface {
	// Notice posts a notice into the conversation's room and returns its event ID ("" when
	// it could not be posted, which the implementation logs).
	Notice(ctx context.Context, conv *database.Conversation, text string) string
	// ShowState refreshes the room's topic and its com.carebridge.conversation state.
	ShowState(ctx context.Context, conv *database.Conversation)
	// ShowMode tells the room what can be sent in the conversation's mode (capabilities).
	ShowMode(ctx context.Context, conv *database.Conversation)
	// ShowPatientName shows a stored patient name (or, with masked names, only in the
	// encrypted pinned notice).
	ShowPatientName(ctx context.Context, conv *database.Conversation, name string) error
	// StaffName is how the patient sees a staff member (a Matrix ID): their display name
	// in the room, or their user name.
	StaffName(ctx context.Context, conv *database.Conversation, userID string) string
	// MemberName is how staff see a member of the room (a Matrix ID) in notices: their
	// display name in the room, or their Matrix ID.
	MemberName(ctx context.Context, conv *database.Conversation, userID string) string
	// Link is a link to the conversation's room for staff ("" while it has none).
	Link(ctx context.Context, conv *database.Conversation) string
}

// Texts is the outbox: the one way a text reaches a patient (queued in the conversation's
// turn, or at once with Twilio's answer).
type Texts interface {
	Enqueue(ctx context.Context, t *outbox.Text) error
	Send(ctx context.Context, t *outbox.Text) (*sms.SentMessage, error)
}

// SecureChat is the patient side of secure mode.
type SecureChat interface {
	IssueLink(ctx context.Context, conv *database.Conversation, actor database.AuditActor) (string, error)
	Revoke(ctx context.Context, conv *database.Conversation, actor database.AuditActor) error
	Unlock(ctx context.Context, conv *database.Conversation, actor database.AuditActor) error
	SetDOB(ctx context.Context, conv *database.Conversation, dob string, actor database.AuditActor) error
	AddStaffMessage(ctx context.Context, conv *database.Conversation, actor database.AuditActor, sender string,
		kind database.SecureMessageKind, text, contentType string, data []byte, eventID string) (*securechat.Message, error)
}

// Alerts is told when a staff message waits in the secure chat, to alert the patient
// (at once or when the quiet period ends).
type Alerts interface {
	StaffMessageKept(ctx context.Context, conv *database.Conversation)
}

// Service does things to conversations.
type Service struct {
	Config *config.Config
	DB     *database.Database
	Rooms  Rooms
	Texts  Texts
	Secure SecureChat
	Alerts Alerts
	// Events hears opt-outs and opt-ins (nil: nobody).
	Events Events
	// BotMXID is the sender recorded for the texts the bridge sends on its own.
	BotMXID string
}

// Notices the room gets when the mode changes.
const (
	SecureModeNotice = "🔒 Secure mode: staff messages are no longer texted. The patient gets a text with a link " +
		"and reads them in the secure web chat after a code sent to their phone."
	SMSModeNotice = "SMS mode: staff messages are texted to the patient again. Do not send protected health information."
)

func audit(conv *database.Conversation, actor database.AuditActor, event database.AuditEvent, detail string) *database.AuditEntry {
	return &database.AuditEntry{Actor: actor, LoginID: conv.LoginID, PortalID: conv.PortalID, Event: event, Outcome: database.OutcomeOK, Detail: detail}
}

// SetMode switches the conversation to mode, audited in the same transaction; the room
// then shows the mode (what can be sent, topic and state) and says so in a notice.
func (s *Service) SetMode(ctx context.Context, conv *database.Conversation, mode database.Mode, actor database.AuditActor) error {
	if conv.Mode == mode {
		return ErrSameMode
	}
	err := s.DB.Audited(ctx, audit(conv, actor, database.EventModeSwitched, string(mode)), func(ctx context.Context) error {
		return s.DB.Conversation.SetMode(ctx, conv.LoginID, conv.PortalID, mode)
	})
	if err != nil {
		return err
	}
	conv.Mode = mode
	s.Rooms.ShowMode(ctx, conv)
	s.Rooms.ShowState(ctx, conv)
	if mode == database.ModeSecure {
		s.Rooms.Notice(ctx, conv, SecureModeNotice)
	} else {
		s.Rooms.Notice(ctx, conv, SMSModeNotice)
	}
	return nil
}

// CleanName is a patient name as staff typed it, with its spaces tidied, or an error.
func CleanName(raw string) (string, error) {
	name := strings.Join(strings.Fields(raw), " ")
	switch {
	case name == "":
		return "", ErrNameEmpty
	case utf8.RuneCountInString(name) > MaxPatientNameLength:
		return "", ErrNameTooLong
	}
	return name, nil
}

// SetPatientName names the patient of the conversation's number (on every clinic number
// that talks with them), audited, and shows the name. A name stored but not yet shown
// returns an error wrapping ErrNotShown.
func (s *Service) SetPatientName(ctx context.Context, conv *database.Conversation, actor database.AuditActor, raw string) error {
	name, err := CleanName(raw)
	if err != nil {
		return err
	}
	err = s.DB.Audited(ctx, audit(conv, actor, database.EventPatientNamed, ""), func(ctx context.Context) error {
		return s.DB.Conversation.SetPatientName(ctx, conv.PatientPhone, name)
	})
	if err != nil {
		return err
	}
	conv.PatientName = name
	if err = s.Rooms.ShowPatientName(ctx, conv, name); err != nil {
		return fmt.Errorf("%w: %w", ErrNotShown, err)
	}
	return nil
}

// SetDOB records the patient's date of birth (YYYY-MM-DD) asked with the code; "" clears
// it. A malformed date is securechat.ErrInvalidDOB.
func (s *Service) SetDOB(ctx context.Context, conv *database.Conversation, actor database.AuditActor, dob string) error {
	return s.Secure.SetDOB(ctx, conv, dob, actor)
}

// Revoke ends every secure link and session of the conversation.
func (s *Service) Revoke(ctx context.Context, conv *database.Conversation, actor database.AuditActor) error {
	return s.Secure.Revoke(ctx, conv, actor)
}

// Unlock lifts a lockout after too many wrong codes.
func (s *Service) Unlock(ctx context.Context, conv *database.Conversation, actor database.AuditActor) error {
	return s.Secure.Unlock(ctx, conv, actor)
}

// TextLink texts the patient a fresh secure link in one of the fixed, PHI-free templates,
// in their language, queued in the conversation's turn. eventID is the room event it
// answers, if any. An opted-out patient is refused with outbox.ErrOptedOut before a link
// is issued.
func (s *Service) TextLink(ctx context.Context, conv *database.Conversation, kind outbox.Kind, eventID string, actor database.AuditActor,
	template func(lang, clinic, link string) string) error {
	if conv.OptedOut {
		return &outbox.Refusal{Reason: outbox.ErrOptedOut, Words: outbox.ErrOptedOut.Error()}
	}
	link, err := s.Secure.IssueLink(ctx, conv, actor)
	if err != nil {
		return fmt.Errorf("failed to issue a secure link: %w", err)
	}
	text := template(securechat.Language(conv, s.Config.SecureChat.Language), s.Config.ClinicName, link)
	if err = s.Text(ctx, conv, kind, text, eventID); err != nil {
		return err
	}
	s.Rooms.ShowState(ctx, conv)
	return nil
}

// KeepForSecureChat stores a text from the staff side (a staff member, a follow-up, the
// integration) for the secure chat and has the patient alerted. eventID is the Matrix
// event it came from, if any.
func (s *Service) KeepForSecureChat(ctx context.Context, conv *database.Conversation, actor database.AuditActor, sender, text, eventID string) (*securechat.Message, error) {
	msg, err := s.Secure.AddStaffMessage(ctx, conv, actor, sender, database.SecureText, text, "", nil, eventID)
	if err != nil {
		return nil, err
	} else if !msg.KeptBefore {
		s.Alerts.StaffMessageKept(ctx, conv)
	}
	return msg, nil
}
