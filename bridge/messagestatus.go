package bridge

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

// A status callback can overtake the recording of its text (Twilio answers the send,
// then calls back while the bridge is still storing the answer): wait this long for it.
const (
	outboundLookupTries = 20
	outboundLookupPause = 50 * time.Millisecond
)

// advanceOutbound records a status callback on the text it is about and returns the text,
// or nil when the callback changes nothing: the text is not the login's (or not known
// after outboundLookupTries), or its stored status is as far along. Usually one statement
// (an UPDATE … RETURNING); the text is read only when that changed nothing.
func (c *Connector) advanceOutbound(ctx context.Context, login *bridgev2.UserLogin, cb *sms.StatusCallback) (*database.Outbound, error) {
	log := zerolog.Ctx(ctx)
	kept, advances := sms.StatusesNotSuperseded(cb.Status)
	for try := 1; ; {
		if advances {
			out, err := c.DB.Outbound.AdvanceStatus(ctx, cb.MessageSID, string(login.ID), cb.Status, cb.ErrorCode, kept)
			if err != nil || out != nil {
				return out, err
			}
		}
		stored, err := c.DB.Outbound.Get(ctx, cb.MessageSID)
		switch {
		case err != nil:
			return nil, err
		case stored != nil && stored.LoginID != string(login.ID):
			log.Debug().Msg("Status callback for a text the bridge did not send; ignored")
			return nil, nil
		case stored != nil && !sms.StatusSupersedes(cb.Status, stored.Status):
			log.Debug().Str("stored_status", stored.Status).Msg("Ignored status callback that does not advance the text")
			return nil, nil
		case stored != nil:
			// Another callback changed the status between the update and the read: again.
			continue
		case try >= outboundLookupTries:
			log.Debug().Msg("Status callback for a text the bridge did not send; ignored")
			return nil, nil
		}
		try++
		time.Sleep(outboundLookupPause)
	}
}

// handleStatus receives Twilio's delivery updates for texts staff sent and shows them in
// the room: delivered as a delivery receipt, undelivered or failed as a failed message
// status with the reason in words.
func (c *Connector) handleStatus(w http.ResponseWriter, r *http.Request) {
	log := c.webhookLog(r, "twilio status callback")
	login := c.verifyWebhook(w, r, log)
	if login == nil {
		return
	}
	cb, err := sms.ParseStatusCallback(r.PostForm)
	if err != nil {
		log.Warn().Err(err).Msg("Rejected malformed status callback")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	log = log.With().Str("message_sid", cb.MessageSID).Str("message_status", cb.Status).Int("error_code", cb.ErrorCode).Logger()
	// Not the request's context: the room updates outlive the answer to Twilio.
	if err = c.applyStatus(log.WithContext(c.Bridge.BackgroundCtx), login, cb); err != nil {
		log.Err(err).Msg("Failed to apply status callback")
		c.catchUp.request(login.ID, true)
		http.Error(w, "Temporarily unable to record the status", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *Connector) applyStatus(ctx context.Context, login *bridgev2.UserLogin, cb *sms.StatusCallback) error {
	log := zerolog.Ctx(ctx)
	out, err := c.advanceOutbound(ctx, login, cb)
	if err != nil || out == nil {
		return err
	}
	portal, err := c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(out.PortalID), Receiver: login.ID})
	if err != nil || portal == nil || portal.MXID == "" {
		return err
	}
	switch {
	case cb.Failed():
		log.Info().Msg("Text was not delivered")
		c.metrics.DeliveryFailure(cb.ErrorCode)
		reason := sms.DescribeTwilioError(cb.ErrorCode)
		// The words in an encrypted notice replying to the message; the status event (only
		// with matrix.message_status_events) without bridgev2's notice, which is not encrypted.
		notice := "⚠️ Not delivered: " + reason
		if kind := outbox.Kind(out.Kind); kind != "" && kind != outbox.KindStaffReply {
			notice = fmt.Sprintf("⚠️ The %s was not delivered to the patient: %s", kind.Words(), reason)
		}
		c.sendReplyNotice(ctx, portal, id.EventID(out.EventID), notice)
		if out.EventID != "" {
			c.Bridge.Matrix.SendMessageStatus(ctx, &bridgev2.MessageStatus{
				Status:      event.MessageStatusFail,
				ErrorReason: event.MessageStatusNetworkError,
				Message:     "Not delivered: " + reason,
				IsCertain:   true,
			}, &bridgev2.MessageStatusEventInfo{
				RoomID:        portal.MXID,
				SourceEventID: id.EventID(out.EventID),
				Sender:        id.UserID(out.SenderMXID),
				EventType:     event.EventMessage,
			})
		}
	case cb.Status == "delivered" || cb.Status == "read":
		// The patient's read receipt on the text (an EDU Element shows as their avatar):
		// their phone has it (appservice/deliveryreceipts.go: one receipt per room and second).
		// Beeper's status event too, where message_status_events is on.
		ghost, err := c.patientGhost(ctx, PhoneOf(portal.ID))
		if err != nil {
			log.Err(err).Msg("Failed to get the patient's ghost for a delivery receipt")
		} else if out.EventID != "" {
			intent := ghost.Intent
			c.receipts.Add(&appservice.Delivered{Room: portal.MXID, Event: id.EventID(out.EventID), Sent: out.CreatedAt,
				Mark: func(ctx context.Context, room id.RoomID, evt id.EventID) error {
					return intent.MarkRead(ctx, room, evt, time.Now())
				}})
		}
		if mc, ok := c.Bridge.Matrix.(*matrix.Connector); ok && ghost != nil && mc.Config.Matrix.MessageStatusEvents {
			c.Bridge.QueueRemoteEvent(login, &simplevent.Receipt{
				EventMeta: simplevent.EventMeta{
					Type:      bridgev2.RemoteEventDeliveryReceipt,
					PortalKey: portal.PortalKey,
					Sender:    bridgev2.EventSender{Sender: ghost.ID},
					Timestamp: time.Now(),
				},
				Targets: []networkid.MessageID{networkid.MessageID(cmp.Or(out.RemoteID, out.MessageSID))},
			})
		}
	}
	return nil
}
