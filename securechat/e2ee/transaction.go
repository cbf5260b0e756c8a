//go:build e2eepatient

package e2ee

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// FromTransaction takes what the inbox needs from an appservice transaction as mautrix-go
// parses it (appservice.Transaction), the stable field where the homeserver sent it and the
// unstable MSC2409/MSC3202 one otherwise, as mautrix's own handleTransaction does.
func FromTransaction(txn *appservice.Transaction) *Push {
	p := &Push{}
	toDevice := txn.ToDeviceEvents
	if toDevice == nil {
		toDevice = txn.MSC2409ToDeviceEvents
	}
	for _, evt := range toDevice {
		if evt == nil || evt.ToUserID == "" || evt.ToDeviceID == "" {
			continue
		}
		content := evt.Content.VeryRaw
		if len(content) == 0 {
			content, _ = json.Marshal(&evt.Content)
		}
		p.ToDevice = append(p.ToDevice, AddressedToDevice{
			ToUser: evt.ToUserID, ToDevice: evt.ToDeviceID,
			Event: ToDeviceEvent{Sender: evt.Sender, Type: evt.Type.Type, Content: rawContent(content)},
		})
	}
	lists := txn.DeviceLists
	if lists == nil {
		lists = txn.MSC3202DeviceLists
	}
	if lists != nil {
		p.Changed, p.Left = lists.Changed, lists.Left
	}
	otk := txn.DeviceOTKCount
	if otk == nil {
		otk = txn.MSC3202DeviceOTKCount
	}
	if len(otk) > 0 {
		p.OTKCounts = map[id.UserID]map[id.DeviceID]map[id.KeyAlgorithm]int{}
		for user, devices := range otk {
			p.OTKCounts[user] = map[id.DeviceID]map[id.KeyAlgorithm]int{}
			for device, c := range devices {
				p.OTKCounts[user][device] = otkCounts(c)
			}
		}
	}
	for _, evt := range txn.Events {
		if evt == nil || evt.RoomID == "" || !slices.Contains(RoomEventTypes, evt.Type.Type) {
			continue
		}
		if raw, err := roomEventJSON(evt); err == nil {
			p.RoomEvents = append(p.RoomEvents, RoomEvent{RoomID: evt.RoomID, Event: raw})
		}
	}
	fallback := txn.FallbackKeys
	if fallback == nil {
		fallback = txn.MSC3202FallbackKeys
	}
	if len(fallback) > 0 {
		p.FallbackKeys = fallback
	}
	return p
}

// RoomEventTypes are the secure room's timeline events the inbox files for the page: the
// encrypted messages, and the state its crypto reads (who is in the room, that it is encrypted
// and how, who may read its history). Anything else in a secure room (which should hold
// nothing unencrypted) is not passed on.
var RoomEventTypes = []string{
	event.EventEncrypted.Type, event.StateMember.Type, event.StateEncryption.Type, event.StateHistoryVisibility.Type,
}

// roomEventJSON is evt as the homeserver sent it, its content byte for byte, in the shape of a
// /sync timeline event with its room_id (as decryptRoomEvent takes it).
func roomEventJSON(evt *event.Event) (json.RawMessage, error) {
	content := evt.Content.VeryRaw
	if len(content) == 0 {
		var err error
		if content, err = json.Marshal(&evt.Content); err != nil {
			return nil, err
		}
	}
	out := struct {
		Type           string          `json:"type"`
		StateKey       *string         `json:"state_key,omitempty"`
		Sender         id.UserID       `json:"sender"`
		EventID        id.EventID      `json:"event_id"`
		RoomID         id.RoomID       `json:"room_id"`
		OriginServerTS int64           `json:"origin_server_ts"`
		Content        json.RawMessage `json:"content"`
	}{evt.Type.Type, evt.StateKey, evt.Sender, evt.ID, evt.RoomID, evt.Timestamp, content}
	return json.Marshal(&out)
}

// otkCounts turns mautrix's counts into the map /sync has. signed_curve25519 is always there
// (a zero tells the page to upload more); curve25519 only when the homeserver counted some.
func otkCounts(c mautrix.OTKCount) map[id.KeyAlgorithm]int {
	m := map[id.KeyAlgorithm]int{id.KeyAlgorithmSignedCurve25519: c.SignedCurve25519}
	if c.Curve25519 > 0 {
		m[id.KeyAlgorithmCurve25519] = c.Curve25519
	}
	return m
}

// MaxTransactionBytes bounds an appservice transaction the tee reads. Synapse sends at most
// 100 events and 100 ephemeral events a transaction, and to-device events in batches.
const MaxTransactionBytes = 64 << 20

const transactionsPath = "/_matrix/app/v1/transactions/"

// TransactionTee is the hook the bridge would install in front of its appservice (bridgev2's
// matrix connector: append it to AS.Middleware in the network connector's Init, before the
// appservice's HTTP server starts). For each transaction the homeserver PUTs with the right
// hs_token it files the inbox's part and then hands the request, body intact, to next (mautrix's
// PutTransaction), which handles it as before. Anything else passes through untouched, and a
// request without the hs_token files nothing (mautrix refuses it).
//
// When filing fails (a secure room's members could not be read), the transaction is answered
// 503 and next does not see it: the homeserver retries it later and both file it then.
func TransactionTee(in *Inbox, hsToken string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			txnID, ok := strings.CutPrefix(r.URL.Path, transactionsPath)
			if !ok || r.Method != http.MethodPut || txnID == "" || strings.Contains(txnID, "/") || !hasToken(r, hsToken) {
				next.ServeHTTP(rw, r)
				return
			}
			log := zerolog.Ctx(r.Context()).With().Str("component", "e2ee_inbox").Str("transaction_id", txnID).Logger()
			body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxTransactionBytes))
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					mautrix.MTooLarge.WithMessage("The transaction is larger than the bridge accepts.").Write(rw)
				} else {
					mautrix.MNotJSON.WithMessage("Failed to read the transaction.").Write(rw)
				}
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var txn appservice.Transaction
			if err := json.Unmarshal(body, &txn); err != nil {
				// mautrix answers the bad JSON.
				next.ServeHTTP(rw, r)
				return
			}
			if err := in.File(log.WithContext(r.Context()), txnID, FromTransaction(&txn)); err != nil {
				log.Warn().Err(err).Msg("Could not file a transaction for patient devices; the homeserver will retry it")
				mautrix.MUnknown.WithMessage("The bridge could not take the transaction now; try again.").
					WithStatus(http.StatusServiceUnavailable).Write(rw)
				return
			}
			next.ServeHTTP(rw, r)
		})
	}
}

func hasToken(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}
