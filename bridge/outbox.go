package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

// newOutbox builds the outbox over the linked clinic numbers' providers.
func (c *Connector) newOutbox() *outbox.Outbox {
	var statusURL func(string) string
	if c.publicBase() != "" {
		statusURL = func(loginID string) string { return c.statusURL(networkid.UserLoginID(loginID)) }
	}
	return outbox.New(outbox.Options{
		DB:             c.DB,
		Config:         &c.Config,
		Accounts:       outboxAccounts{c},
		Sealer:         c.Keys,
		Hooks:          outboxHooks{c},
		StatusCallback: statusURL,
		Log:            c.Bridge.Log.With().Str("component", "outbox").Logger(),
		Now:            c.now,
	})
}

// outboxAccounts gives the outbox each linked clinic number's provider.
type outboxAccounts struct{ c *Connector }

func (a outboxAccounts) Provider(ctx context.Context, loginID string) (sms.Provider, error) {
	// Loaded from the database when the bridge has not loaded the logins yet (at start).
	login, err := a.c.Bridge.GetExistingUserLoginByID(ctx, networkid.UserLoginID(loginID))
	if err != nil {
		return nil, fmt.Errorf("failed to load the clinic number: %w", err)
	} else if login == nil {
		return nil, fmt.Errorf("%w: %s", outbox.ErrNotLinked, loginID)
	}
	client, ok := login.Client.(*Client)
	if !ok || client == nil {
		return nil, errors.New("the clinic number is not connected yet")
	}
	return client.Provider, nil
}

// outboxHooks tells the room what became of texts: a failure is an encrypted notice.
type outboxHooks struct{ c *Connector }

// Sent counts a staff text Twilio accepted. Staff see it in the room only when it is
// delivered (the patient's read receipt) or fails (a notice): a receipt for "sent" too
// would cost the homeserver a second request per text for a state that lasts seconds.
func (h outboxHooks) Sent(ctx context.Context, t *outbox.Text, sent *sms.SentMessage) {
	if t.Kind == outbox.KindStaffReply {
		h.c.metrics.Outbound(metrics.OutboundSent)
	}
}

func (h outboxHooks) Failed(ctx context.Context, t *outbox.Text, err error) {
	if t.Kind == outbox.KindStaffReply {
		h.c.metrics.Outbound(metrics.OutboundFailed)
	}
	h.c.sendFailure(err)
	portal, perr := h.c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(t.PortalID),
		Receiver: networkid.UserLoginID(t.LoginID)})
	if perr != nil || portal == nil || portal.MXID == "" {
		zerolog.Ctx(ctx).Err(perr).Msg("No room to tell about a text that was not sent")
		return
	}
	h.c.sendReplyNotice(ctx, portal, id.EventID(t.EventID), conversation.NotSentWords(t.Kind, err))
}

// sendReplyNotice posts an encrypted notice in a conversation room, as a reply to
// inReplyTo when it is set.
func (c *Connector) sendReplyNotice(ctx context.Context, portal *bridgev2.Portal, inReplyTo id.EventID, text string) id.EventID {
	evtID, err := c.sendRoomNotice(ctx, portal.MXID, inReplyTo, text)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to send notice to conversation room")
	}
	return evtID
}

// sendRoomNotice posts an encrypted notice in a room, as a reply to inReplyTo when it is set.
func (c *Connector) sendRoomNotice(ctx context.Context, roomID id.RoomID, inReplyTo id.EventID, text string) (id.EventID, error) {
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text}
	if inReplyTo != "" {
		content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(inReplyTo)
	}
	resp, err := c.Bridge.Bot.SendMessage(ctx, roomID, event.EventMessage, &event.Content{Parsed: content}, nil)
	if err != nil && strings.Contains(err.Error(), "group session") {
		// A membership change in the room (handled beside this send) can end the bot's
		// group session between its creation and this encryption: once more, with a new one.
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Notice not encrypted; sending it again with a new group session")
		resp, err = c.Bridge.Bot.SendMessage(ctx, roomID, event.EventMessage, &event.Content{Parsed: content}, nil)
	}
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}
