//go:build e2eepatient

package e2ee

import (
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// signedObject is what the proxy reads of a signed JSON object (device keys, a cross-signing
// key, a one-time key): whose it is and who signed it. The object itself is forwarded as sent.
type signedObject struct {
	UserID     id.UserID                     `json:"user_id"`
	DeviceID   id.DeviceID                   `json:"device_id"`
	Signatures map[id.UserID]json.RawMessage `json:"signatures"`
}

// checkOwnSigned refuses raw unless it is an object of the patient-web user (and, when device
// is set, of that device) signed by nobody but the patient-web user.
func (p *Proxy) checkOwnSigned(raw json.RawMessage, device id.DeviceID) *denial {
	var obj signedObject
	if d := decodeObject(raw, &obj); d != nil {
		return d
	}
	if obj.UserID != p.cfg.UserID {
		return errOtherUser
	}
	if device != "" && obj.DeviceID != device {
		return errOtherDevice
	}
	return p.checkSigners(obj.Signatures)
}

func (p *Proxy) checkSigners(sigs map[id.UserID]json.RawMessage) *denial {
	for signer := range sigs {
		if signer != p.cfg.UserID {
			return errOtherUser
		}
	}
	return nil
}

// checkOneTimeKeys refuses one-time or fallback keys signed by anyone but the patient-web user;
// the homeserver files them under the masqueraded device whatever they say.
func (p *Proxy) checkOneTimeKeys(keys map[string]json.RawMessage) *denial {
	for _, raw := range keys {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			continue // an unsigned curve25519 key is a bare string
		}
		var obj signedObject
		if d := decodeObject(raw, &obj); d != nil {
			return d
		}
		if d := p.checkSigners(obj.Signatures); d != nil {
			return d
		}
	}
	return nil
}

// decodeObject decodes raw, which must be a JSON object, without refusing unknown fields:
// signed objects carry fields the proxy has no say about.
func decodeObject(raw json.RawMessage, v any) *denial {
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) != nil || probe == nil || json.Unmarshal(raw, v) != nil {
		return errNotJSON
	}
	return nil
}

type keysUploadBody struct {
	DeviceKeys   json.RawMessage            `json:"device_keys,omitempty"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys,omitempty"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys,omitempty"`
}

// checkKeysUpload: a browser uploads its own device's identity and one-time keys, never
// another device's (that would let one device stand in for another).
func (p *Proxy) checkKeysUpload(c *call) (any, *denial) {
	var b keysUploadBody
	if d := decodeStrict(c.body, &b); d != nil {
		return nil, d
	}
	if d := p.checkUploadedKeys(b.DeviceKeys, c.device, b.OneTimeKeys, b.FallbackKeys); d != nil {
		return nil, d
	}
	return &b, nil
}

// checkUploadedKeys checks the keys a browser uploads for device (on keys/upload, or with
// its dehydrated device): the device's identity keys, when given, signed by that device,
// and its one-time and fallback keys.
func (p *Proxy) checkUploadedKeys(deviceKeys json.RawMessage, device id.DeviceID, oneTime, fallback map[string]json.RawMessage) *denial {
	if deviceKeys != nil {
		if d := p.checkOwnSigned(deviceKeys, device); d != nil {
			return d
		}
	}
	if d := p.checkOneTimeKeys(oneTime); d != nil {
		return d
	}
	return p.checkOneTimeKeys(fallback)
}

type deviceSigningBody struct {
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
	UserSigningKey json.RawMessage `json:"user_signing_key,omitempty"`
	Auth           json.RawMessage `json:"auth,omitempty"`
}

// checkDeviceSigningUpload: the page sets up the patient-web user's cross-signing keys, so that
// staff clients can exclude every device the patient did not sign. Only that user's keys.
func (p *Proxy) checkDeviceSigningUpload(c *call) (any, *denial) {
	var b deviceSigningBody
	if d := decodeStrict(c.body, &b); d != nil {
		return nil, d
	}
	if b.Auth != nil {
		return nil, errUIA // the patient-web user has no password to authenticate with
	}
	for _, k := range []json.RawMessage{b.MasterKey, b.SelfSigningKey, b.UserSigningKey} {
		if k == nil {
			continue
		}
		if d := p.checkOwnSigned(k, ""); d != nil {
			return nil, d
		}
	}
	return &b, nil
}

// checkSignaturesUpload: the page signs its own devices with the self-signing key (and its
// master key with a device). Signatures on other users' keys are refused: in the spike the
// patient's trust in staff is not published.
func (p *Proxy) checkSignaturesUpload(c *call) (any, *denial) {
	var b map[id.UserID]map[string]json.RawMessage
	if d := decodeStrict(c.body, &b); d != nil {
		return nil, d
	}
	for user, objs := range b {
		if user != p.cfg.UserID {
			return nil, errOtherUser
		}
		for _, raw := range objs {
			if d := p.checkOwnSigned(raw, ""); d != nil {
				return nil, d
			}
		}
	}
	return b, nil
}

type keysQueryBody struct {
	DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
	Timeout    *int                        `json:"timeout,omitempty"`
	Token      string                      `json:"token,omitempty"`
}

// checkKeysQuery: the page needs the device keys of the people it encrypts for, the secure
// room's members, and of nobody else (no directory of the homeserver's users).
func (p *Proxy) checkKeysQuery(c *call) (any, *denial) {
	var b keysQueryBody
	if d := decodeStrict(c.body, &b); d != nil {
		return nil, d
	}
	if b.DeviceKeys == nil {
		b.DeviceKeys = map[id.UserID][]id.DeviceID{}
	}
	members, d := p.members(c.ctx)
	if d != nil {
		return nil, d
	}
	for user := range b.DeviceKeys {
		if !members[user] {
			return nil, errNonMember
		}
	}
	return &b, nil
}

type keysClaimBody struct {
	OneTimeKeys map[id.UserID]map[id.DeviceID]id.KeyAlgorithm `json:"one_time_keys"`
	Timeout     *int                                          `json:"timeout,omitempty"`
}

// checkKeysClaim: the page opens olm sessions to share its room key with members' devices
// only; claiming spends a device's one-time keys, so nobody else's are touched.
func (p *Proxy) checkKeysClaim(c *call) (any, *denial) {
	var b keysClaimBody
	if d := decodeStrict(c.body, &b); d != nil {
		return nil, d
	}
	if b.OneTimeKeys == nil {
		b.OneTimeKeys = map[id.UserID]map[id.DeviceID]id.KeyAlgorithm{}
	}
	members, d := p.members(c.ctx)
	if d != nil {
		return nil, d
	}
	for user, devices := range b.OneTimeKeys {
		if !members[user] {
			return nil, errNonMember
		}
		for _, alg := range devices {
			if alg != id.KeyAlgorithmSignedCurve25519 {
				return nil, errClaimAlgorithm
			}
		}
	}
	return &b, nil
}
