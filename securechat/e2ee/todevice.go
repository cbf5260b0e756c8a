//go:build e2eepatient

package e2ee

import (
	"encoding/json"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// toDeviceTypes are the to-device messages the page may send, each for a reason:
//   - m.room.encrypted: olm, which carries room keys (m.room_key), secrets (m.secret.send),
//     forwarded keys and m.dummy inside it, readable only by the recipient device;
//   - m.key.verification.*: verifying another of the patient's devices, or staff verifying
//     the patient's, by emoji (SAS); none of them carries content;
//   - m.secret.request: a new device of the patient asking the others for the cross-signing
//     and backup secrets (the answer travels encrypted);
//   - m.room_key.withheld: telling a device (say, one the patient did not sign) that it will
//     not get the key, so its client says so instead of waiting.
//
// m.room_key_request is left out: the page has its key or asks a dehydrated device for it.
var toDeviceTypes = map[string]bool{
	event.ToDeviceEncrypted.Type:           true,
	event.ToDeviceVerificationRequest.Type: true,
	event.ToDeviceVerificationReady.Type:   true,
	event.ToDeviceVerificationStart.Type:   true,
	event.ToDeviceVerificationAccept.Type:  true,
	event.ToDeviceVerificationKey.Type:     true,
	event.ToDeviceVerificationMAC.Type:     true,
	event.ToDeviceVerificationCancel.Type:  true,
	event.ToDeviceVerificationDone.Type:    true,
	event.ToDeviceSecretRequest.Type:       true,
	event.ToDeviceRoomKeyWithheld.Type:     true,
}

type sendToDeviceBody struct {
	Messages map[id.UserID]map[string]json.RawMessage `json:"messages"`
}

type olmContent struct {
	Algorithm id.Algorithm `json:"algorithm"`
}

// checkSendToDevice: to-device messages of the listed types to members of the secure room
// only (a device ID or "*"), and m.room.encrypted ones only as olm.
func (p *Proxy) checkSendToDevice(c *call) (any, *denial) {
	evtType := c.vars[0]
	if !toDeviceTypes[evtType] {
		return nil, errToDeviceType
	}
	var b sendToDeviceBody
	if d := decodeStrict(c.body, &b); d != nil {
		return nil, d
	}
	if b.Messages == nil {
		b.Messages = map[id.UserID]map[string]json.RawMessage{}
	}
	members, d := p.members(c.ctx)
	if d != nil {
		return nil, d
	}
	for user, devices := range b.Messages {
		if !members[user] {
			return nil, errNonMember
		}
		for _, content := range devices {
			var oc olmContent
			if d := decodeObject(content, &oc); d != nil {
				return nil, d
			}
			if evtType == event.ToDeviceEncrypted.Type && oc.Algorithm != id.AlgorithmOlmV1 {
				return nil, errNotEncrypted
			}
		}
	}
	return &b, nil
}
