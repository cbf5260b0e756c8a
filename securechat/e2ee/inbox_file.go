//go:build e2eepatient

package e2ee

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
)

// recentTxns is how many transaction IDs the inbox remembers to file a retried one once. The
// homeserver retries only its last unanswered transaction, so a handful would do.
const recentTxns = 256

// Push is what one appservice transaction carries for the inbox, whichever of the stable and
// unstable (MSC2409/MSC3202) fields the homeserver used. FromTransaction makes one.
type Push struct {
	ToDevice []AddressedToDevice
	// DeviceLists are the users whose devices changed, or who no longer share a room with any
	// of the appservice's users. They are the appservice's, not one user's: the inbox narrows
	// them per patient.
	Changed, Left []id.UserID
	// OTKCounts and FallbackKeys are keyed user → device, for the appservice's users' devices.
	OTKCounts    map[id.UserID]map[id.DeviceID]map[id.KeyAlgorithm]int
	FallbackKeys map[id.UserID]map[id.DeviceID][]id.KeyAlgorithm
	// RoomEvents are the transaction's timeline events of the types in RoomEventTypes, in order.
	RoomEvents []RoomEvent
}

// RoomEvent is a timeline event and its room.
type RoomEvent struct {
	RoomID id.RoomID
	Event  json.RawMessage
}

// AddressedToDevice is a to-device event with the recipient the homeserver named (MSC2409's
// to_user_id and to_device_id).
type AddressedToDevice struct {
	ToUser   id.UserID
	ToDevice id.DeviceID
	Event    ToDeviceEvent
}

// File files one transaction's push for the devices the inbox serves and ignores the rest.
// txnID is the homeserver's transaction ID: a transaction filed before is not filed again.
// Filing is all or nothing: when a secure room's members cannot be read it files nothing and
// returns the error, so the caller answers the homeserver with an error and it retries.
// One-time key counts are taken only if no keys/upload of the device was answered since File
// began (KeysUploaded): the homeserver computed them before that upload.
func (in *Inbox) File(ctx context.Context, txnID string, p *Push) error {
	in.mu.Lock()
	if in.txns[txnID] {
		in.mu.Unlock()
		return nil
	}
	in.clock++
	began := in.clock
	var patients []id.UserID
	if len(p.Changed)+len(p.Left) > 0 {
		for d := range in.devices {
			if !slices.Contains(patients, d.User) {
				patients = append(patients, d.User)
			}
		}
	}
	in.mu.Unlock()

	// The members are read outside the lock: they may come from the homeserver.
	members := make(map[id.UserID][]id.UserID, len(patients))
	for _, u := range patients {
		list, err := in.members(ctx, u)
		if err != nil {
			return fmt.Errorf("failed to read the secure room's members for a device list change: %w", err)
		}
		members[u] = list
	}

	in.mu.Lock()
	defer in.mu.Unlock()
	if in.txns[txnID] {
		return nil
	}
	in.rememberTxn(txnID)
	woken := map[*deviceBox]bool{}
	var filed, ignored, roomFiled int

	for _, td := range p.ToDevice {
		ev := td.Event
		boxes := in.boxesFor(td.ToUser, td.ToDevice)
		if len(boxes) == 0 {
			ignored++
			continue
		}
		for _, box := range boxes {
			in.push(box, entry{toDevice: &ev})
			woken[box] = true
			filed++
		}
	}

	for _, re := range p.RoomEvents {
		var rf int
		for patient, room := range in.rooms {
			if room != re.RoomID {
				continue
			}
			for _, box := range in.boxesFor(patient, "*") {
				in.push(box, entry{roomEvent: re.Event})
				woken[box] = true
				rf++
			}
		}
		roomFiled += rf
	}

	for patient, list := range members {
		relevant := map[id.UserID]bool{patient: true}
		if in.seen[patient] == nil {
			in.seen[patient] = map[id.UserID]bool{patient: true}
		}
		for _, m := range list {
			relevant[m] = true
			in.seen[patient][m] = true
		}
		var changed, left []id.UserID
		for _, u := range p.Changed {
			if relevant[u] {
				changed = append(changed, u)
			}
		}
		for _, u := range p.Left {
			if in.seen[patient][u] {
				left = append(left, u)
			}
		}
		if len(changed)+len(left) == 0 {
			continue
		}
		for _, box := range in.boxesFor(patient, "*") {
			in.push(box, entry{changed: changed, left: left})
			woken[box] = true
		}
	}

	for user, devices := range p.OTKCounts {
		for device, counts := range devices {
			box := in.devices[Device{user, device}]
			if box == nil || box.otkAt > began {
				continue // a keys/upload answered since: these counts are older than its
			}
			box.otkAt = began
			if maps.Equal(box.otk, counts) {
				continue
			}
			box.otk = maps.Clone(counts)
			box.touch()
			woken[box] = true
		}
	}
	for user, devices := range p.FallbackKeys {
		for device, types := range devices {
			box := in.devices[Device{user, device}]
			if box == nil {
				continue
			}
			types = slices.Clone(types)
			slices.Sort(types)
			if box.fallbackKnown && slices.Equal(box.fallback, types) {
				continue
			}
			box.fallback, box.fallbackKnown = types, true
			box.touch()
			woken[box] = true
		}
	}

	for box := range woken {
		box.wakeUp()
	}
	if filed+ignored > 0 || len(woken) > 0 {
		zerolog.Ctx(ctx).Debug().Int("to_device_filed", filed).Int("to_device_ignored", ignored).Int("room_events_filed", roomFiled).
			Int("devices_woken", len(woken)).Msg("Filed an appservice transaction for patient devices")
	}
	return nil
}

// boxesFor returns the queue of user's device, or of all user's devices for "*".
func (in *Inbox) boxesFor(user id.UserID, device id.DeviceID) []*deviceBox {
	if device == "*" {
		var boxes []*deviceBox
		for d, box := range in.devices {
			if d.User == user {
				boxes = append(boxes, box)
			}
		}
		return boxes
	}
	if box := in.devices[Device{user, device}]; box != nil {
		return []*deviceBox{box}
	}
	return nil
}

func (in *Inbox) rememberTxn(txnID string) {
	in.txns[txnID] = true
	in.txnOrder = append(in.txnOrder, txnID)
	if len(in.txnOrder) > recentTxns {
		delete(in.txns, in.txnOrder[0])
		in.txnOrder = in.txnOrder[1:]
	}
}

// rawContent is a to-device event's content as the homeserver sent it.
func rawContent(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	return json.RawMessage(b)
}
