//go:build e2eepatient

package e2ee

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"maunium.net/go/mautrix/id"
)

// DefaultQueueLen bounds a device's queue when InboxConfig.QueueLen is zero. A page that polls
// takes its events within seconds; 1024 is several hundred room keys (one per staff device and
// room session) and verification messages waiting for a closed tab.
const DefaultQueueLen = 1024

// Device is one patient browser: the patient-web user and the device ID the bridge created for
// it (MSC4190). Device IDs are unique per user only, so the inbox always keys on both.
type Device struct {
	User id.UserID
	ID   id.DeviceID
}

// InboxConfig is what an Inbox serves.
type InboxConfig struct {
	// Devices are the patient browser devices the inbox files for; everything the homeserver
	// pushes for any other user or device is ignored. AddDevice adds one later.
	Devices []Device
	// Members returns the joined members of a patient-web user's secure room. A device list
	// change is filed for a patient's devices only for these users and the patient itself, so
	// the page does not learn about device changes of users it never shares a room with.
	Members func(ctx context.Context, patient id.UserID) ([]id.UserID, error)
	// SecureRooms names each patient-web user's secure room: its timeline events (the encrypted
	// messages and the state the page's crypto needs, RoomEventTypes) are filed for all that
	// patient's devices. SetSecureRoom sets one later.
	SecureRooms map[id.UserID]id.RoomID
	// QueueLen bounds each device's queue; zero means DefaultQueueLen. When a queue is full its
	// oldest entry is dropped and the page is told (Batch.Missed).
	QueueLen int
}

// Inbox files, per patient browser device, what the homeserver pushes to the appservice for it
// (MSC2409 to-device events, MSC3202 device list changes, one-time key counts and unused
// fallback key types) and hands it to that device's page by Next, in the shape the page's
// OlmMachine takes (receiveSyncChanges). It is the homeserver → browser half of the spike; the
// Proxy is the other.
//
// The spike keeps it in memory: a restart loses what was not yet taken (the page is told, by
// Batch.Missed). A product keeps it in the database, a table per device queue, as the
// homeserver does for /sync.
type Inbox struct {
	members  func(ctx context.Context, patient id.UserID) ([]id.UserID, error)
	queueLen int
	// epoch is random per Inbox: a cursor from another process (before a restart) is not
	// taken for one of this one.
	epoch string

	mu      sync.Mutex
	devices map[Device]*deviceBox
	// seen are the members ever filed for a patient: a user who "left" (shares no room with
	// the appservice's users any more) is told only to pages that could have tracked them.
	seen map[id.UserID]map[id.UserID]bool
	// txns are the transaction IDs filed lately, so a transaction the homeserver retries is
	// filed once.
	txns     map[string]bool
	txnOrder []string
	rooms    map[id.UserID]id.RoomID
	// clock orders the filing of transactions and the proxy's keys/upload answers, so that a
	// transaction that started filing before an upload was answered cannot replace the
	// upload's (newer) one-time key counts.
	clock uint64
}

// deviceBox is one device's queue and key state. seq numbers every change; a cursor is the
// last seq a page has taken.
type deviceBox struct {
	seq     uint64
	entries []entry
	// forgotten is the highest seq of an entry no longer kept: taken (a later poll's cursor
	// acknowledged it) or dropped from a full queue. A poll from before it may have missed it.
	forgotten uint64
	// The latest one-time key counts and unused fallback key types, and the seq at which they
	// last changed: they are state, not a queue.
	otk map[id.KeyAlgorithm]int
	// otkAt is the clock of the counts kept: of the transaction or the upload answer they
	// came from. Counts from a transaction begun before it are stale and ignored.
	otkAt         uint64
	fallback      []id.KeyAlgorithm
	fallbackKnown bool
	// wake is closed (and replaced) when something is filed, waking the long polls.
	wake chan struct{}
	// waiting counts the long polls waiting on wake (tests wait for it).
	waiting int
}

// entry is one queued change: a to-device event or a device list change.
type entry struct {
	seq       uint64
	toDevice  *ToDeviceEvent
	roomEvent json.RawMessage
	changed   []id.UserID
	left      []id.UserID
}

// ToDeviceEvent is a to-device event as the page's OlmMachine takes it: the homeserver's
// to_user_id and to_device_id are dropped, the content is the homeserver's bytes unchanged.
type ToDeviceEvent struct {
	Sender  id.UserID       `json:"sender"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// DeviceLists is the device list change of a batch, as in /sync.
type DeviceLists struct {
	Changed []id.UserID `json:"changed"`
	Left    []id.UserID `json:"left"`
}

// Batch is what a page takes in one poll, named as in /sync so the page hands it on as is:
//
//	machine.receiveSyncChanges(JSON.stringify(b.to_device.events),
//	    new DeviceLists(b.device_lists.changed.map(u => new UserId(u)), b.device_lists.left.map(…)),
//	    new Map(Object.entries(b.device_one_time_keys_count)),
//	    b.device_unused_fallback_key_types && new Set(b.device_unused_fallback_key_types))
type Batch struct {
	// NextBatch is the cursor for the next poll; polling with it acknowledges this batch.
	NextBatch   string      `json:"next_batch"`
	ToDevice    ToDevice    `json:"to_device"`
	DeviceLists DeviceLists `json:"device_lists"`
	// OTKCounts are the latest one-time key counts the homeserver reported for this device,
	// in every batch once known (as /sync does); empty until then.
	OTKCounts map[id.KeyAlgorithm]int `json:"device_one_time_keys_count"`
	// RoomEvents are the secure room's timeline events since the last batch, oldest first, as
	// the homeserver sent them (room_id included), for decryptRoomEvent and the page's members.
	RoomEvents []json.RawMessage `json:"room_events"`
	// FallbackKeys are the latest unused fallback key types; absent (nil) until the homeserver
	// reported them, so that the page does not take "unknown" for "used up".
	FallbackKeys *[]id.KeyAlgorithm `json:"device_unused_fallback_key_types,omitempty"`
	// Missed says events for this device may have been lost to this page: its queue was full,
	// the cursor is from before a restart, or it is older than one a poll already acknowledged
	// (another tab of the same device, or a page restored from an old cursor). Olm sessions and
	// room keys may be missing and the page should ask for them again.
	Missed bool `json:"missed,omitempty"`
}

// ToDevice wraps the events as /sync does.
type ToDevice struct {
	Events []ToDeviceEvent `json:"events"`
}

// ErrUnknownDevice is returned by Next for a device the inbox does not serve.
var ErrUnknownDevice = errors.New("the inbox does not serve this device")

// NewInbox returns an empty inbox for cfg's devices.
func NewInbox(cfg InboxConfig) (*Inbox, error) {
	if cfg.Members == nil {
		return nil, errors.New("no Members function for the secure rooms")
	}
	var epoch [6]byte
	if _, err := rand.Read(epoch[:]); err != nil {
		return nil, fmt.Errorf("failed to make the inbox epoch: %w", err)
	}
	in := &Inbox{
		members: cfg.Members, queueLen: cfg.QueueLen, epoch: hex.EncodeToString(epoch[:]),
		devices: map[Device]*deviceBox{}, seen: map[id.UserID]map[id.UserID]bool{}, txns: map[string]bool{},
		rooms: map[id.UserID]id.RoomID{},
	}
	for patient, room := range cfg.SecureRooms {
		in.rooms[patient] = room
	}
	if in.queueLen <= 0 {
		in.queueLen = DefaultQueueLen
	}
	for _, d := range cfg.Devices {
		in.AddDevice(d)
	}
	return in, nil
}

// AddDevice starts filing for a patient browser device (the bridge created it when the page
// first opened); what the homeserver pushed for it before is not filed.
func (in *Inbox) AddDevice(d Device) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.devices[d] == nil {
		in.devices[d] = &deviceBox{wake: make(chan struct{})}
	}
}

// KeysUploaded takes the one-time key counts the homeserver answered a keys/upload of d with
// (the Proxy calls it through Config.KeysUploaded before the page sees the answer). They are
// the newest counts there are: a transaction that began filing before this call carries counts
// the homeserver computed before the upload, and its counts are ignored. Without this, the
// page's first poll after its upload hands it the pre-upload count (0) and it uploads a second
// set of one-time keys it does not need.
func (in *Inbox) KeysUploaded(d Device, counts map[id.KeyAlgorithm]int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	box := in.devices[d]
	if box == nil {
		return
	}
	in.clock++
	box.otkAt = in.clock
	if counts == nil {
		counts = map[id.KeyAlgorithm]int{}
	}
	if _, ok := counts[id.KeyAlgorithmSignedCurve25519]; !ok {
		counts = maps.Clone(counts)
		counts[id.KeyAlgorithmSignedCurve25519] = 0 // as otkCounts: always said
	}
	if maps.Equal(box.otk, counts) {
		return
	}
	box.otk = maps.Clone(counts)
	box.touch()
	box.wakeUp()
}

// SetSecureRoom names patient's secure room (the bridge made it); its events pushed before are
// not filed.
func (in *Inbox) SetSecureRoom(patient id.UserID, room id.RoomID) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rooms[patient] = room
}

// Serves says whether the inbox files for d.
func (in *Inbox) Serves(d Device) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.devices[d] != nil
}

func (in *Inbox) cursor(seq uint64) string {
	return in.epoch + "_" + strconv.FormatUint(seq, 10)
}

// parseCursor returns the seq of since and whether it is one of this inbox's cursors ("" is
// a page's first poll: seq 0, valid).
func (in *Inbox) parseCursor(since string) (uint64, bool) {
	if since == "" {
		return 0, true
	}
	epoch, n, ok := strings.Cut(since, "_")
	if !ok || epoch != in.epoch {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil
}

// Next returns what was filed for d after since (the cursor of the page's last batch, or ""
// the first time) and the cursor to poll with next. Polling with a cursor acknowledges
// everything up to it, which is then forgotten. When nothing is waiting, Next waits until
// something is filed or ctx ends (the long poll's timeout), and then returns an empty batch
// with the same cursor and no error.
func (in *Inbox) Next(ctx context.Context, d Device, since string) (*Batch, string, error) {
	for {
		in.mu.Lock()
		box := in.devices[d]
		if box == nil {
			in.mu.Unlock()
			return nil, "", ErrUnknownDevice
		}
		seq, ok := in.parseCursor(since)
		missed := !ok
		if seq > box.seq {
			// A cursor this inbox never gave this device: start again from what is kept.
			seq, missed = 0, true
		}
		box.ack(seq)
		if box.forgotten > seq {
			missed = true
		}
		if box.seq > seq || missed || ctx.Err() != nil {
			// Something new, or the poll's time is up: the batch holds everything after seq
			// (the key counts once known) and its cursor is the newest seq.
			b := box.batch(seq)
			b.Missed = missed
			b.NextBatch = in.cursor(box.seq)
			in.mu.Unlock()
			return b, b.NextBatch, nil
		}
		wake := box.wake
		box.waiting++
		in.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
		}
		in.mu.Lock()
		box.waiting--
		in.mu.Unlock()
	}
}

// ack forgets the entries the page has taken.
func (box *deviceBox) ack(seq uint64) {
	i := 0
	for i < len(box.entries) && box.entries[i].seq <= seq {
		box.forgotten = max(box.forgotten, box.entries[i].seq)
		i++
	}
	box.entries = box.entries[i:]
}

// batch gathers the entries after seq; a user's later device list change wins over an
// earlier one.
func (box *deviceBox) batch(seq uint64) *Batch {
	b := &Batch{ToDevice: ToDevice{Events: []ToDeviceEvent{}}, OTKCounts: map[id.KeyAlgorithm]int{}, RoomEvents: []json.RawMessage{}}
	changed, left := map[id.UserID]bool{}, map[id.UserID]bool{}
	for _, e := range box.entries {
		if e.seq <= seq {
			continue
		}
		if e.toDevice != nil {
			b.ToDevice.Events = append(b.ToDevice.Events, *e.toDevice)
		}
		if e.roomEvent != nil {
			b.RoomEvents = append(b.RoomEvents, e.roomEvent)
		}
		for _, u := range e.changed {
			changed[u], left[u] = true, false
		}
		for _, u := range e.left {
			left[u], changed[u] = true, false
		}
	}
	b.DeviceLists = DeviceLists{Changed: setList(changed), Left: setList(left)}
	for alg, n := range box.otk {
		b.OTKCounts[alg] = n
	}
	if box.fallbackKnown {
		fb := slices.Clone(box.fallback)
		if fb == nil {
			fb = []id.KeyAlgorithm{}
		}
		b.FallbackKeys = &fb
	}
	return b
}

func setList(set map[id.UserID]bool) []id.UserID {
	list := []id.UserID{}
	for u, in := range set {
		if in {
			list = append(list, u)
		}
	}
	slices.Sort(list)
	return list
}

// push queues e, dropping the oldest entry when the queue is full.
func (in *Inbox) push(box *deviceBox, e entry) {
	box.seq++
	e.seq = box.seq
	if len(box.entries) >= in.queueLen {
		box.forgotten = box.entries[0].seq
		box.entries = box.entries[1:]
	}
	box.entries = append(box.entries, e)
}

// touch numbers a state change (key counts) so the long polls return it.
func (box *deviceBox) touch() {
	box.seq++
}

// waiters is how many long polls wait for d.
func (in *Inbox) waiters(d Device) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if box := in.devices[d]; box != nil {
		return box.waiting
	}
	return 0
}

func (box *deviceBox) wakeUp() {
	close(box.wake)
	box.wake = make(chan struct{})
}
