//go:build e2eepatient

package e2ee

import (
	"encoding/json"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// megolmContent is all an m.room.encrypted event may hold; a field beside these (a clear
// "body", say) is refused, so nothing readable goes into the room by mistake.
type megolmContent struct {
	Algorithm  id.Algorithm    `json:"algorithm"`
	Ciphertext string          `json:"ciphertext"`
	SenderKey  string          `json:"sender_key,omitempty"`
	DeviceID   id.DeviceID     `json:"device_id,omitempty"`
	SessionID  id.SessionID    `json:"session_id,omitempty"`
	RelatesTo  json.RawMessage `json:"m.relates_to,omitempty"`
}

// checkRoomSend: the patient's replies, into the secure room only and only Megolm-encrypted.
func (p *Proxy) checkRoomSend(c *call) (any, *denial) {
	if id.RoomID(c.vars[0]) != p.cfg.RoomID {
		return nil, errOtherRoom
	}
	if c.vars[1] != event.EventEncrypted.Type {
		return nil, errNotEncrypted
	}
	var b megolmContent
	if d := decodeStrict(c.body, &b); d != nil {
		return nil, d
	}
	if b.Algorithm != id.AlgorithmMegolmV1 || b.Ciphertext == "" {
		return nil, errNotEncrypted
	}
	return &b, nil
}

type receiptBody struct {
	ThreadID string `json:"thread_id,omitempty"`
}

// checkReceipt: read receipts in the secure room, so staff see that the patient read them.
func (p *Proxy) checkReceipt(c *call) (any, *denial) {
	if id.RoomID(c.vars[0]) != p.cfg.RoomID {
		return nil, errOtherRoom
	}
	if t := c.vars[1]; t != string(event.ReceiptTypeRead) && t != string(event.ReceiptTypeReadPrivate) {
		return nil, errReceiptType
	}
	if !strings.HasPrefix(c.vars[2], "$") {
		return nil, errEventID
	}
	var b receiptBody
	if d := decodeOptional(c.body, &b); d != nil {
		return nil, d
	}
	return &b, nil
}

// decodeOptional is decodeStrict where an empty body means {}.
func decodeOptional(body []byte, v any) *denial {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	return decodeStrict(body, v)
}
