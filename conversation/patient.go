package conversation

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

// Events hears what the patient changed (the integration API's event feed); optional.
type Events interface {
	OptedOut(ctx context.Context, conv *database.Conversation, optedOut bool)
}

// Keyword acts on a carrier keyword (STOP, START, HELP and their synonyms) the patient
// texted, after the text is in the room: it records an opt-out or opt-in (audited, once:
// a redelivered text changes nothing twice), tells the room, and answers the patient with
// the clinic's fixed text unless Twilio already did (twilioAnswered, from OptOutType).
// A lost answer is logged, not returned: the state is recorded and the text must not be
// delivered again for it.
func (s *Service) Keyword(ctx context.Context, conv *database.Conversation, keyword sms.Keyword, body string, twilioAnswered bool) error {
	var reply, notice string
	switch keyword {
	case sms.KeywordOptOut:
		if conv.OptedOut {
			return nil
		}
		reply = s.Config.Keywords.OptOutReply
		notice = fmt.Sprintf("The patient texted %q and has opted out: nothing will be sent to this number "+
			"until they text START.", strings.TrimSpace(body))
	case sms.KeywordOptIn:
		if !conv.OptedOut {
			return nil
		}
		reply = s.Config.Keywords.OptInReply
		notice = "The patient texted START: texts to this number are allowed again."
	case sms.KeywordHelp:
		reply = s.Config.Keywords.HelpText
	default:
		return nil
	}
	log := zerolog.Ctx(ctx).With().Stringer("keyword", keyword).Logger()
	if keyword != sms.KeywordHelp {
		optOut := keyword == sms.KeywordOptOut
		event := map[bool]database.AuditEvent{true: database.EventOptedOut, false: database.EventOptedIn}[optOut]
		err := s.DB.Audited(ctx, &database.AuditEntry{Actor: database.PatientSMSActor, LoginID: conv.LoginID, PortalID: conv.PortalID,
			Event: event, Outcome: database.OutcomeOK, Detail: "keyword"}, func(ctx context.Context) error {
			return s.DB.Conversation.SetOptedOut(ctx, conv.LoginID, conv.PortalID, optOut)
		})
		if err != nil {
			return fmt.Errorf("failed to record opt-out state: %w", err)
		}
		conv.OptedOut = optOut
		log.Info().Msg("Patient changed their opt-out state")
		s.Rooms.Notice(ctx, conv, notice)
		if s.Events != nil {
			s.Events.OptedOut(ctx, conv, optOut)
		}
	}
	if twilioAnswered {
		log.Debug().Msg("Twilio already answered the keyword")
		return nil
	}
	if err := s.Text(ctx, conv, outbox.KindKeywordReply, s.Config.Render(reply), ""); err != nil {
		log.Err(err).Msg("Failed to answer keyword")
	}
	return nil
}
