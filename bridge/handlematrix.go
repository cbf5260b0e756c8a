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
		To: PhoneOf(msg.Portal.ID), Body: patientText(ctx, msg.Content), Kind: outbox.KindStaffReply,
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
		if err = c.Outbox.Check(ctx, text); err != nil && !errors.Is(err, outbox.ErrEmpty) {
			return nil, cl.refused(ctx, msg, err)
		}
		mediaURL, err := cl.stageMMS(ctx, msg)
		if err != nil {
			c.metrics.Outbound(metrics.OutboundUnsupported)
			return nil, cl.refuse(ctx, msg, err, event.MessageStatusUnsupported, err.Error())
		}
		text.MediaURLs = []string{mediaURL}
	}
	if err = c.Outbox.Enqueue(ctx, text); err != nil {
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
