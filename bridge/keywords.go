package bridge

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/sms"
)

// handleKeyword acts on a carrier keyword (STOP, START, HELP and synonyms) after the
// patient's text is in the room (conversation.Service.Keyword).
func (c *Connector) handleKeyword(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, in *sms.Inbound) error {
	keyword := sms.ParseKeyword(in.Body)
	if keyword == sms.KeywordNone || len(in.Media) > 0 {
		return nil
	}
	conv, err := c.DB.Conversation.Get(ctx, string(login.ID), string(portal.ID))
	if err != nil || conv == nil {
		return fmt.Errorf("failed to read conversation for keyword: %w", err)
	}
	return c.Conversations.Keyword(ctx, conv, keyword, in.Body, in.OptOutType != "")
}

// sendNotice posts a bridge notice (m.notice from the bridge bot, encrypted in encrypted
// rooms) in a conversation room.
func (c *Connector) sendNotice(ctx context.Context, portal *bridgev2.Portal, text string) id.EventID {
	return c.sendReplyNotice(ctx, portal, "", text)
}
