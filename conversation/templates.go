package conversation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// Templates (quick replies, network.templates): filled in for one conversation and sent
// the way it sends — texted in SMS mode, kept for the secure chat (with an alert) in
// secure mode. `!sms t NAME` sends one (SendTemplate); the integration API fills one in
// (FillTemplate) and sends it as its own message.

var (
	// ErrTemplateNotFilled wraps a failure to fill a template in (the patient's name or a
	// fresh link could not be had).
	ErrTemplateNotFilled = errors.New("the template could not be filled in")
	// ErrNotKept wraps a failure to keep a message for the secure chat.
	ErrNotKept = errors.New("the message could not be stored for the secure chat")
)

// UnknownTemplateError refuses a template name the clinic has not configured.
type UnknownTemplateError struct {
	Name string
	// Names are the configured templates, sorted.
	Names []string
}

func (e *UnknownTemplateError) Error() string {
	return fmt.Sprintf("no template %q; the templates are: %s", e.Name, strings.Join(e.Names, ", "))
}

// Template returns the configured text of the template called name (any case), or an
// *UnknownTemplateError.
func (s *Service) Template(name string) (string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if text, ok := s.Config.Templates[name]; ok {
		return text, nil
	}
	names := make([]string, 0, len(s.Config.Templates))
	for n := range s.Config.Templates {
		names = append(names, n)
	}
	slices.Sort(names)
	return "", &UnknownTemplateError{Name: name, Names: names}
}

// FillTemplate fills the template called name in for the conversation. A fresh secure link
// is issued (by actor) only when the template has {link} and is texted: in secure mode
// the text is read inside the secure chat, so {link} is words (securechat.ChatWords) and
// the alert texted to the patient stays the one live link.
func (s *Service) FillTemplate(ctx context.Context, conv *database.Conversation, actor database.AuditActor, name string) (string, error) {
	template, err := s.Template(name)
	if err != nil {
		return "", err
	}
	return s.fill(ctx, conv, actor, template)
}

func (s *Service) fill(ctx context.Context, conv *database.Conversation, actor database.AuditActor, template string) (string, error) {
	name := conv.PatientName
	if name == "" {
		var err error
		if name, err = s.DB.Conversation.GetPatientName(ctx, conv.PatientPhone); err != nil {
			return "", fmt.Errorf("failed to read the patient's name: %w", err)
		}
	}
	link := ""
	if workflow.NeedsLink(template) && conv.Mode == database.ModeSecure {
		link = securechat.ChatWords(securechat.Language(conv, s.Config.SecureChat.Language))
	} else if workflow.NeedsLink(template) {
		var err error
		if link, err = s.Secure.IssueLink(ctx, conv, actor); err != nil {
			return "", fmt.Errorf("failed to issue a secure link: %w", err)
		}
	}
	return workflow.FillTemplate(template, name, s.Config.ClinicName, link), nil
}

// SendTemplate fills the template called name in and sends it by the conversation's
// mode: texted (queued in the conversation's turn; eventID is the command it answers) or
// kept for the secure chat under the staff member's name with the patient alerted. What
// went out is audited and shown in the room as a notice; the text is returned.
//
// Refusals: an *UnknownTemplateError; in SMS mode outbox.ErrOptedOut (before a link is
// issued), a *TooManySegmentsError, or the outbox's *outbox.Refusal; ErrTemplateNotFilled
// and ErrNotKept wrap the failures staff can only retry.
func (s *Service) SendTemplate(ctx context.Context, conv *database.Conversation, actor database.AuditActor, name, eventID string) (string, error) {
	template, err := s.Template(name)
	if err != nil {
		return "", err
	}
	name = strings.ToLower(strings.TrimSpace(name))
	secure := conv.Mode == database.ModeSecure
	if !secure && conv.OptedOut {
		return "", &outbox.Refusal{Reason: outbox.ErrOptedOut, Words: outbox.ErrOptedOut.Error()}
	}
	text, err := s.fill(ctx, conv, actor, template)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemplateNotFilled, err)
	}
	via, notice := "sms", fmt.Sprintf("Sent template %s by SMS: %s", name, text)
	if secure {
		if _, err = s.KeepForSecureChat(ctx, conv, actor, s.Rooms.StaffName(ctx, conv, actor.Name), text, eventID); err != nil {
			return "", fmt.Errorf("%w: %w", ErrNotKept, err)
		}
		via, notice = "secure", fmt.Sprintf("🔒 Sent template %s to the secure chat: %s", name, text)
	} else {
		if segments, enc := sms.CountSegments(text); segments > s.Config.MaxSegments {
			return "", &TooManySegmentsError{Segments: segments, Encoding: enc, Limit: s.Config.MaxSegments}
		}
		if err = s.Text(ctx, conv, outbox.KindTemplate, text, eventID); err != nil {
			return "", err
		}
	}
	if err = s.DB.Audited(ctx, audit(conv, actor, database.EventTemplateSent, name+" by "+via), nil); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to audit a template")
	}
	s.Rooms.Notice(ctx, conv, notice)
	return text, nil
}
