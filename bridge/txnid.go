package bridge

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// A patient's message is put into the room "exactly once" in three steps:
//
//  1. Each send of a part gets a transaction ID derived from the message's own ID (the
//     Twilio MessageSid, or the secure chat message ID), which a homeserver that is still
//     running de-duplicates (Synapse persists them; Dendrite keeps them in memory only).
//  2. The same ID travels inside the (encrypted) event content as txnMarker, and the
//     Matrix client does not retry the send by itself: a failed send is retried by the
//     caller, which first looks in the room.
//  3. A delivery that may have overlapped a crash (a retry, or a message stored before
//     this process started) looks for the marker in the room's recent events of the
//     patient's ghost; parts found there are recorded with their event IDs, not sent.

// txnMarker is the content field holding a part's transaction ID.
const txnMarker = "com.carebridge.txn_id"

// earlierSendPages bounds the look into the room: pages of earlierSendPageSize events of
// the patient's ghost, newest first.
const (
	earlierSendPages    = 4
	earlierSendPageSize = 50
	// earlierSendMargin is how much older than the message an event may be and still be
	// looked at (events carry the message's own timestamp).
	earlierSendMargin = time.Minute
)

type txnContextKey struct{}

// stableSend is what a message's sends know about it.
type stableSend struct {
	// base is the message's ID; each part's transaction ID is made from it.
	base string
	// found holds the parts an earlier attempt already put into the room.
	found map[string]id.EventID
}

func (s *stableSend) txnID(part int) string {
	return fmt.Sprintf("carebridge.%s.%d", s.base, part)
}

// withStableSend marks a context: the ghost's sends made with it use stable transaction IDs.
func withStableSend(ctx context.Context, send *stableSend) context.Context {
	return context.WithValue(ctx, txnContextKey{}, send)
}

// txnIntent is a ghost's Matrix API that fills in stable transaction IDs.
type txnIntent struct {
	bridgev2.MatrixAPI
}

// SendMessage is called by bridgev2 for each part of a converted message.
func (t *txnIntent) SendMessage(ctx context.Context, roomID id.RoomID, eventType event.Type, content *event.Content, extra *bridgev2.MatrixSendExtra) (*mautrix.RespSendEvent, error) {
	send, ok := ctx.Value(txnContextKey{}).(*stableSend)
	if !ok {
		return t.MatrixAPI.SendMessage(ctx, roomID, eventType, content, extra)
	}
	stable := bridgev2.MatrixSendExtra{}
	if extra != nil {
		stable = *extra
	}
	if stable.TransactionID == "" {
		stable.TransactionID = send.txnID(stable.PartIndex)
	}
	if eventID, ok := send.found[stable.TransactionID]; ok {
		zerolog.Ctx(ctx).Info().Stringer("event_id", eventID).Int("part", stable.PartIndex).
			Msg("Message part is already in the room from an earlier attempt; not sending it again")
		return &mautrix.RespSendEvent{EventID: eventID}, nil
	}
	marked := *content
	marked.Raw = maps.Clone(content.Raw)
	if marked.Raw == nil {
		marked.Raw = map[string]any{}
	}
	marked.Raw[txnMarker] = stable.TransactionID
	// A retry inside the Matrix client could reach a restarted homeserver that forgot the
	// transaction; the caller retries instead, after looking in the room.
	return t.MatrixAPI.SendMessage(mautrix.WithMaxRetries(ctx, 0), roomID, eventType, &marked, &stable)
}

var txnWrapLock sync.Mutex

// useStableTxnIDs makes a patient ghost send with stable transaction IDs (once per ghost).
func useStableTxnIDs(ghost *bridgev2.Ghost) {
	txnWrapLock.Lock()
	defer txnWrapLock.Unlock()
	if _, ok := ghost.Intent.(*txnIntent); !ok && ghost.Intent != nil {
		ghost.Intent = &txnIntent{MatrixAPI: ghost.Intent}
	}
}

// findEarlierSends looks in the room for parts of the message base that sender already
// sent there, newest first, back to the message's time. It returns them by transaction ID.
func (c *Connector) findEarlierSends(ctx context.Context, roomID id.RoomID, sender id.UserID, base string, at time.Time) (map[string]id.EventID, error) {
	mc, ok := c.Bridge.Matrix.(*matrix.Connector)
	if !ok || roomID == "" {
		return nil, nil
	}
	prefix := (&stableSend{base: base}).txnID(0)
	prefix = prefix[:len(prefix)-1]
	oldest := at.Add(-earlierSendMargin).UnixMilli()
	filter := &mautrix.FilterPart{Senders: []id.UserID{sender}, Types: []event.Type{event.EventEncrypted, event.EventMessage}}
	found := map[string]id.EventID{}
	from := ""
	for range earlierSendPages {
		resp, err := mc.Bot.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, filter, earlierSendPageSize)
		if err != nil {
			return nil, fmt.Errorf("failed to read the room: %w", err)
		}
		for _, evt := range resp.Chunk {
			if evt.Timestamp < oldest {
				return found, nil
			}
			txn := c.sentTxnID(ctx, mc, evt)
			if strings.HasPrefix(txn, prefix) {
				found[txn] = evt.ID
			}
		}
		if resp.End == "" || len(resp.Chunk) == 0 {
			break
		}
		from = resp.End
	}
	return found, nil
}

// sentTxnID returns the transaction ID marked in a ghost's event, decrypting it when needed.
func (c *Connector) sentTxnID(ctx context.Context, mc *matrix.Connector, evt *event.Event) string {
	if evt.Type == event.EventEncrypted {
		if mc.Crypto == nil {
			return ""
		}
		if err := evt.Content.ParseRaw(evt.Type); err != nil {
			return ""
		}
		decrypted, err := mc.Crypto.Decrypt(ctx, evt)
		if err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Stringer("event_id", evt.ID).Msg("Could not decrypt a ghost's event while looking for an earlier delivery")
			return ""
		}
		evt = decrypted
	}
	txn, _ := evt.Content.Raw[txnMarker].(string)
	return txn
}

// prepareStableSend returns what the sends of message base need. When an earlier attempt
// may have reached the room (suspect) and bridgev2 has no record of the message, it looks
// in the room for the parts that attempt sent.
func (c *Connector) prepareStableSend(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, ghost *bridgev2.Ghost, base string, at time.Time, suspect bool) (*stableSend, error) {
	useStableTxnIDs(ghost)
	send := &stableSend{base: base}
	if !suspect || portal.MXID == "" {
		return send, nil
	}
	parts, err := c.Bridge.DB.Message.GetAllPartsByID(ctx, login.ID, networkid.MessageID(base))
	if err != nil {
		return nil, fmt.Errorf("failed to check for an earlier delivery: %w", err)
	} else if len(parts) > 0 {
		return send, nil // bridgev2 knows the message and ignores it as a duplicate
	}
	send.found, err = c.findEarlierSends(ctx, portal.MXID, ghost.Intent.GetMXID(), base, at)
	if err != nil {
		return nil, fmt.Errorf("failed to look for an earlier delivery: %w", err)
	}
	if len(send.found) > 0 {
		zerolog.Ctx(ctx).Info().Int("parts", len(send.found)).Msg("Found parts of the message already in the room")
	}
	return send, nil
}

// forgetPartialDelivery removes bridgev2's record of the parts a failed delivery did send,
// so that the retry handles the whole message again (finding those parts in the room)
// rather than ignoring it as a duplicate and losing the parts that failed.
func (c *Connector) forgetPartialDelivery(ctx context.Context, login *bridgev2.UserLogin, base string) {
	if err := c.Bridge.DB.Message.DeleteAllParts(ctx, login.ID, networkid.MessageID(base)); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to forget a partly delivered message; parts that failed may not be retried")
	}
}
