package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	bridgedb "maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/outbox"
)

// refuse tells staff, in an encrypted notice replying to their message, why it was not
// sent, and fails the message (no bridgev2 notice: bridgev2 sends those unencrypted).
func (cl *Client) refuse(ctx context.Context, msg *bridgev2.MatrixMessage, err error, reason event.MessageStatusReason, words string) error {
	cl.Connector.sendReplyNotice(ctx, msg.Portal, msg.Event.ID, "⚠️ Not sent: "+words)
	return bridgev2.WrapErrorInStatus(err).WithErrorReason(reason).WithMessage("Not sent: " + words).
		WithIsCertain(true).WithSendNotice(false)
}

// HandleMatrixMessage is called for each staff message in a conversation room (through
// the relay when the sender has no login), inside the homeserver's transaction: text goes
// to the outbox as an SMS, an image or file as an MMS. The outbox has stored it when this
// returns, and sends it in the conversation's turn; nothing here waits for Twilio. Every
// failure is told in an encrypted notice (bridgev2's own notices are turned off).
func (cl *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	resp, err := cl.handleMatrixMessage(ctx, msg)
	var told bridgev2.MessageStatus
	if err != nil && !errors.As(err, &told) {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to handle staff message")
		cl.Connector.sendReplyNotice(ctx, msg.Portal, msg.Event.ID,
			"⚠️ Not sent: carebridge could not take the message just now; send it again.")
	}
	return resp, err
}

func (cl *Client) handleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	c := cl.Connector
	meta := cl.meta()
	text := &outbox.Text{LoginID: string(cl.UserLogin.ID), PortalID: string(msg.Portal.ID), From: meta.Phone,
		To: PhoneOf(msg.Portal.ID), Body: conversation.PatientText(ctx, msg.Content), Kind: outbox.KindStaffReply,
		EventID: msg.Event.ID.String(), SenderMXID: msg.Event.Sender.String()}
	switch msg.Content.MsgType {
	case event.MsgText, event.MsgNotice, event.MsgEmote:
	case event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio:
		// The caption (or the relay's "X sent an image") is the text; a bare file name is not.
		if msg.Content.FileName == "" || msg.Content.Body == msg.Content.FileName {
			text.Body = ""
		}
	default:
		c.metrics.Outbound(metrics.OutboundUnsupported)
		return nil, cl.refuse(ctx, msg, ErrUnsupportedMessage, event.MessageStatusUnsupported, "only text, images and files can be sent by SMS")
	}
	conv, err := c.DB.Conversation.Get(ctx, string(cl.UserLogin.ID), string(msg.Portal.ID))
	if err != nil {
		return nil, fmt.Errorf("failed to read conversation: %w", err)
	}
	if conv != nil && conv.Mode == database.ModeSecure {
		resp, err := cl.handleSecureMessage(ctx, msg, conv)
		if err == nil {
			c.metrics.Outbound(metrics.OutboundSecure)
		}
		return resp, err
	}
	if msg.Content.MsgType.IsMedia() {
		// Refused before the attachment is staged for Twilio (the caption may be empty).
		if err = c.Outbox.CheckWith(ctx, text, conv); err != nil && !errors.Is(err, outbox.ErrEmpty) {
			return nil, cl.refused(ctx, msg, err)
		}
		mediaURL, err := cl.stageMMS(ctx, msg)
		if err != nil {
			c.metrics.Outbound(metrics.OutboundUnsupported)
			return nil, cl.refuse(ctx, msg, err, event.MessageStatusUnsupported, err.Error())
		}
		text.MediaURLs = []string{mediaURL}
	}
	if len(text.MediaURLs) > 0 {
		// Staging the attachment took a while: its opt-out check reads the conversation again.
		err = c.Outbox.Enqueue(ctx, text)
	} else {
		err = c.Outbox.EnqueueWith(ctx, text, conv)
	}
	if err != nil {
		return nil, cl.refused(ctx, msg, err)
	}
	zerolog.Ctx(ctx).Debug().Int64("outbox_id", text.ID).Msg("Staff message queued as a text")
	if conv != nil {
		c.Responses.StaffReplied(ctx, conv, msg.Event.Sender.String())
	}
	return &bridgev2.MatrixMessageResponse{DB: &bridgedb.Message{
		ID:        networkid.MessageID(outbox.RemoteID(text.ID)),
		SenderID:  MakeClinicUserID(meta.Phone),
		Timestamp: time.Now(),
	}}, nil
}

// refused turns the outbox's refusal of a staff message into a notice and a failed status.
func (cl *Client) refused(ctx context.Context, msg *bridgev2.MatrixMessage, err error) error {
	var refusal *outbox.Refusal
	if !errors.As(err, &refusal) {
		return err
	}
	result, reason := metrics.OutboundUnsupported, event.MessageStatusUnsupported
	switch {
	case errors.Is(err, outbox.ErrOptedOut):
		result, reason = metrics.OutboundOptedOut, event.MessageStatusNoPermission
	case errors.Is(err, outbox.ErrTooLong):
		result = metrics.OutboundTooLong
	}
	cl.Connector.metrics.Outbound(result)
	return cl.refuse(ctx, msg, err, reason, refusal.Words)
}

// guardStaffMedia tells staff, in an encrypted notice, why bridgev2 will refuse their
// attachment before carebridge sees it: bridgev2 checks a message against the room's
// features (file types and sizes carriers deliver by MMS) and reports a refusal only
// through its own notices, which are not encrypted and so are turned off. The check
// mirrors bridgev2's (Portal.checkMessageContentCaps) for what an SMS room declares.
func (c *Connector) guardStaffMedia(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsMessage()
	if content == nil || !content.MsgType.IsMedia() || evt.Sender == c.Bridge.Bot.GetMXID() {
		return
	}
	if _, isGhost := c.Bridge.Matrix.ParseGhostMXID(evt.Sender); isGhost {
		return
	}
	portal, err := c.Bridge.GetPortalByMXID(ctx, evt.RoomID)
	if err != nil || portal == nil {
		return
	}
	login := c.Bridge.GetCachedUserLoginByID(portal.Receiver)
	if login == nil {
		return
	}
	client, ok := login.Client.(*Client)
	if !ok {
		return
	}
	reason := mediaRefusal(client.GetCapabilities(ctx, portal), content)
	if reason == "" {
		return
	}
	log := c.Bridge.Log.With().Str("action", "refuse staff attachment").Stringer("event_id", evt.ID).Logger()
	log.Debug().Str("reason", reason).Msg("Attachment refused before it is bridged")
	// Off the appservice transaction: the notice is a request to the homeserver.
	go c.sendReplyNotice(log.WithContext(c.Bridge.BackgroundCtx), portal, evt.ID, "⚠️ Not sent: "+reason)
}

// mediaRefusal is why an attachment does not fit the room's features ("" when it does).
func mediaRefusal(caps *event.RoomFeatures, content *event.MessageEventContent) string {
	feat, ok := caps.File[content.GetCapMsgType()]
	if !ok {
		return bridgev2.ErrUnsupportedMessageType.Error() + ": only text, images and files can be sent by SMS"
	}
	if content.Info == nil {
		return ""
	}
	if feat.MaxSize != 0 && int64(content.Info.Size) > feat.MaxSize {
		return fmt.Sprintf("%s: %.1f MiB is larger than the maximum of %.1f MiB carriers deliver",
			bridgev2.ErrMediaTooLarge.Error(), float64(content.Info.Size)/1024/1024, float64(feat.MaxSize)/1024/1024)
	}
	if content.Info.MimeType != "" && feat.GetMimeSupport(content.Info.MimeType).Reject() {
		return fmt.Sprintf("%s: carriers do not deliver %s by MMS; send a JPEG, PNG or GIF, or switch to secure mode (%s)",
			bridgev2.ErrUnsupportedMediaType.Error(), content.Info.MimeType, "!sms secure")
	}
	return ""
}
