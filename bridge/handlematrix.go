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
	"github.com/carebridge/carebridge/sms"
)

// notSent is a refusal staff see as a notice, for a message that was certainly not sent.
func notSent(err error, reason event.MessageStatusReason, words string) error {
	return bridgev2.WrapErrorInStatus(err).WithErrorReason(reason).WithMessage("Not sent: " + words).
		WithIsCertain(true).WithSendNotice(true)
}

// HandleMatrixMessage is called for each staff message in a conversation room (through
// the relay when the sender has no login): text goes to the patient as an SMS, an image
// or file as an MMS.
func (cl *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	meta := cl.meta()
	out := &sms.OutboundMessage{From: meta.Phone, To: PhoneOf(msg.Portal.ID), Body: msg.Content.Body}
	switch msg.Content.MsgType {
	case event.MsgText, event.MsgNotice, event.MsgEmote:
	case event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio:
		// The caption (or the relay's "X sent an image") is the text; a bare file name is not.
		if msg.Content.FileName == "" || msg.Content.Body == msg.Content.FileName {
			out.Body = ""
		}
	default:
		cl.Connector.metrics.Outbound(metrics.OutboundUnsupported)
		return nil, notSent(ErrUnsupportedMessage, event.MessageStatusUnsupported, "only text, images and files can be sent by SMS")
	}
	conv, err := cl.Connector.DB.Conversation.Get(ctx, string(cl.UserLogin.ID), string(msg.Portal.ID))
	if err != nil {
		return nil, fmt.Errorf("failed to read conversation: %w", err)
	}
	if conv != nil && conv.Mode == database.ModeSecure {
		resp, err := cl.handleSecureMessage(ctx, msg, conv)
		if err == nil {
			cl.Connector.metrics.Outbound(metrics.OutboundSecure)
		}
		return resp, err
	}
	if segments, enc := sms.CountSegments(out.Body); segments > cl.Connector.Config.MaxSegments {
		cl.Connector.metrics.Outbound(metrics.OutboundTooLong)
		return nil, notSent(ErrTooLong, event.MessageStatusUnsupported, fmt.Sprintf(
			"this text would be %d SMS segments (%s), more than the limit of %d; shorten it or split it",
			segments, enc, cl.Connector.Config.MaxSegments))
	}
	if conv != nil && conv.OptedOut {
		cl.Connector.metrics.Outbound(metrics.OutboundOptedOut)
		return nil, notSent(ErrOptedOut, event.MessageStatusNoPermission, ErrOptedOut.Error())
	}
	if msg.Content.MsgType.IsMedia() {
		mediaURL, err := cl.stageMMS(ctx, msg)
		if err != nil {
			cl.Connector.metrics.Outbound(metrics.OutboundUnsupported)
			return nil, notSent(err, event.MessageStatusUnsupported, err.Error())
		}
		out.MediaURLs = []string{mediaURL}
	}
	if cl.Connector.publicBase() != "" {
		out.StatusCallback = cl.Connector.statusURL(cl.UserLogin.ID)
	}
	sent, attempts, err := sms.SendWithRetry(ctx, cl.Provider, out, sms.DefaultRetryPolicy)
	if err != nil {
		cl.Connector.metrics.Outbound(metrics.OutboundFailed)
		cl.Connector.sendFailure(err)
		var sendErr *sms.SendError
		if errors.As(err, &sendErr) {
			zerolog.Ctx(ctx).Warn().Int("twilio_code", sendErr.Code).Int("http_status", sendErr.Status).
				Int("attempts", attempts).Msg("Twilio refused outbound SMS")
			return nil, bridgev2.WrapErrorInStatus(err).
				WithErrorReason(event.MessageStatusNetworkError).
				WithMessage("Not sent: " + sendErr.Describe()).
				WithIsCertain(true).WithSendNotice(true)
		}
		return nil, err
	}
	zerolog.Ctx(ctx).Debug().Str("message_sid", sent.SID).Int("attempts", attempts).Msg("Sent SMS")
	cl.Connector.metrics.Outbound(metrics.OutboundSent)
	cl.recordOutbound(ctx, msg, sent)
	cl.Connector.onStaffReply(ctx, msg.Portal, msg.Event.Sender)
	return &bridgev2.MatrixMessageResponse{DB: &bridgedb.Message{
		ID:        networkid.MessageID(sent.SID),
		SenderID:  MakeUserID(meta.Phone),
		Timestamp: time.Now(),
	}}, nil
}
