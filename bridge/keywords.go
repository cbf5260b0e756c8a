package bridge

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

// handleKeyword acts on a carrier keyword (STOP, START, HELP and synonyms) after the
// patient's text is in the room: it records an opt-out or opt-in, tells the staff, and
// answers the patient unless Twilio already did (OptOutType). Recording is idempotent,
// so a redelivered text changes nothing twice.
func (c *Connector) handleKeyword(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, in *sms.Inbound) error {
	keyword := sms.ParseKeyword(in.Body)
	if keyword == sms.KeywordNone || len(in.Media) > 0 {
		return nil
	}
	log := zerolog.Ctx(ctx).With().Stringer("keyword", keyword).Logger()
	conv, err := c.DB.Conversation.Get(ctx, string(login.ID), string(portal.ID))
	if err != nil || conv == nil {
		return fmt.Errorf("failed to read conversation for keyword: %w", err)
	}
	var reply, notice string
	switch keyword {
	case sms.KeywordOptOut:
		if conv.OptedOut {
			return nil
		}
		reply = c.Config.Keywords.OptOutReply
		notice = fmt.Sprintf("The patient texted %q and has opted out: nothing will be sent to this number "+
			"until they text START.", strings.TrimSpace(in.Body))
	case sms.KeywordOptIn:
		if !conv.OptedOut {
			return nil
		}
		reply = c.Config.Keywords.OptInReply
		notice = "The patient texted START: texts to this number are allowed again."
	case sms.KeywordHelp:
		reply = c.Config.Keywords.HelpText
	}
	if keyword != sms.KeywordHelp {
		optOut := keyword == sms.KeywordOptOut
		event := map[bool]string{true: "opted out", false: "opted in"}[optOut]
		err = c.audited(ctx, convAudit(conv, "patient:sms", event, "ok", "keyword"), func(ctx context.Context) error {
			return c.DB.Conversation.SetOptedOut(ctx, string(login.ID), string(portal.ID), optOut)
		})
		if err != nil {
			return fmt.Errorf("failed to record opt-out state: %w", err)
		}
		log.Info().Msg("Patient changed their opt-out state")
		c.sendNotice(ctx, portal, notice)
		if c.API != nil {
			conv.OptedOut = optOut
			c.API.OptedOut(ctx, conv, optOut)
		}
	}
	if in.OptOutType != "" {
		log.Debug().Str("opt_out_type", in.OptOutType).Msg("Twilio already answered the keyword")
		return nil
	}
	if err = c.textPatient(ctx, conv, outbox.KindKeywordReply, c.Config.Render(reply), ""); err != nil {
		// The state is recorded; a lost confirmation must not make the text redeliver.
		log.Err(err).Msg("Failed to answer keyword")
	}
	return nil
}

// sendNotice posts a bridge notice (m.notice from the bridge bot, encrypted in encrypted
// rooms) in a conversation room.
func (c *Connector) sendNotice(ctx context.Context, portal *bridgev2.Portal, text string) id.EventID {
	return c.sendReplyNotice(ctx, portal, "", text)
}
