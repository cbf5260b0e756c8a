package bridge

import (
	"context"
	"fmt"
	"sync"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// bridgev2 sends a patient's text into the room with a random transaction ID, so a text
// redelivered after a crash between the homeserver accepting it and bridgev2 recording
// it would appear twice. carebridge gives each send a transaction ID derived from the
// Twilio MessageSid, which the homeserver de-duplicates.

type txnContextKey struct{}

// withTxnBase marks a context: sends made with it get transaction IDs based on base.
func withTxnBase(ctx context.Context, base string) context.Context {
	return context.WithValue(ctx, txnContextKey{}, base)
}

// txnIntent is a ghost's Matrix API that fills in stable transaction IDs.
type txnIntent struct {
	bridgev2.MatrixAPI
}

// SendMessage is called by bridgev2 for each part of a converted message.
func (t *txnIntent) SendMessage(ctx context.Context, roomID id.RoomID, eventType event.Type, content *event.Content, extra *bridgev2.MatrixSendExtra) (*mautrix.RespSendEvent, error) {
	if base, ok := ctx.Value(txnContextKey{}).(string); ok {
		stable := bridgev2.MatrixSendExtra{}
		if extra != nil {
			stable = *extra
		}
		if stable.TransactionID == "" {
			stable.TransactionID = fmt.Sprintf("carebridge.%s.%d", base, stable.PartIndex)
			extra = &stable
		}
	}
	return t.MatrixAPI.SendMessage(ctx, roomID, eventType, content, extra)
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
