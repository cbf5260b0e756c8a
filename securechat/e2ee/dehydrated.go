//go:build e2eepatient

package e2ee

import (
	"encoding/json"
	"strings"

	"maunium.net/go/mautrix/id"
)

type dehydratedPutBody struct {
	DeviceID                 id.DeviceID                `json:"device_id"`
	DeviceData               json.RawMessage            `json:"device_data"`
	InitialDeviceDisplayName string                     `json:"initial_device_display_name,omitempty"`
	DeviceKeys               json.RawMessage            `json:"device_keys,omitempty"`
	OneTimeKeys              map[string]json.RawMessage `json:"one_time_keys,omitempty"`
	FallbackKeys             map[string]json.RawMessage `json:"fallback_keys,omitempty"`
}

// checkDehydratedPut (MSC3814): the page stores a dehydrated device, pickled under a key only
// the patient's passkey (PRF) gives, which receives room keys while no page is open. It is
// the patient-web user's, under a new device ID (never one of the browsers').
func (p *Proxy) checkDehydratedPut(c *call) (any, *denial) {
	var b dehydratedPutBody
	if d := decodeStrict(c.body, &b); d != nil {
		return nil, d
	}
	if b.DeviceID == "" || p.devices[b.DeviceID] {
		return nil, errOtherDevice
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(b.DeviceData, &data) != nil || data == nil {
		return nil, errNotJSON
	}
	if d := p.checkUploadedKeys(b.DeviceKeys, b.DeviceID, b.OneTimeKeys, b.FallbackKeys); d != nil {
		return nil, d
	}
	return &b, nil
}

// checkNoBody: GET (a new browser rehydrates) and DELETE (the patient replaces or drops it)
// of the patient-web user's dehydrated device take no body.
func (p *Proxy) checkNoBody(c *call) (any, *denial) {
	if len(strings.TrimSpace(string(c.body))) != 0 {
		return nil, errBodyNotEmpty
	}
	return nil, nil
}

type dehydratedEventsBody struct {
	NextBatch string `json:"next_batch,omitempty"`
}

// checkDehydratedEvents: a rehydrating page reads the to-device messages (room keys) its
// dehydrated device received while no page was open. The homeserver answers only for the
// masqueraded user's own dehydrated device.
func (p *Proxy) checkDehydratedEvents(c *call) (any, *denial) {
	if p.devices[id.DeviceID(c.vars[0])] {
		return nil, errOtherDevice
	}
	var b dehydratedEventsBody
	if d := decodeOptional(c.body, &b); d != nil {
		return nil, d
	}
	return &b, nil
}
