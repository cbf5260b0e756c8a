package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"

	"github.com/carebridge/carebridge/sms"
)

// HandleMatrixMessage is called for each staff message in a conversation room (through
// the relay when the sender has no login): it goes to the patient as an SMS.
func (cl *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	switch msg.Content.MsgType {
	case event.MsgText, event.MsgNotice, event.MsgEmote:
	default:
		return nil, bridgev2.WrapErrorInStatus(ErrUnsupportedMessage).
			WithErrorReason(event.MessageStatusUnsupported).
			WithMessage("Only text can be sent by SMS for now; the file was not sent").
			WithIsCertain(true).WithSendNotice(true)
	}
	meta := cl.meta()
	conv, err := cl.Connector.DB.Conversation.Get(ctx, string(cl.UserLogin.ID), string(msg.Portal.ID))
	if err != nil {
		return nil, fmt.Errorf("failed to read conversation: %w", err)
	}
	if conv != nil && conv.OptedOut {
		return nil, bridgev2.WrapErrorInStatus(ErrOptedOut).
			WithErrorReason(event.MessageStatusNoPermission).
			WithMessage("Not sent: " + ErrOptedOut.Error()).
			WithIsCertain(true).WithSendNotice(true)
	}
	out := &sms.OutboundMessage{From: meta.Phone, To: PhoneOf(msg.Portal.ID), Body: msg.Content.Body}
	if cl.Connector.publicBase() != "" {
		out.StatusCallback = cl.Connector.statusURL(cl.UserLogin.ID)
	}
	sent, attempts, err := sms.SendWithRetry(ctx, cl.Provider, out, sms.DefaultRetryPolicy)
	if err != nil {
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
	cl.recordOutbound(ctx, msg, sent)
	return &bridgev2.MatrixMessageResponse{DB: &database.Message{
		ID:        networkid.MessageID(sent.SID),
		SenderID:  MakeUserID(meta.Phone),
		Timestamp: time.Now(),
	}}, nil
}
