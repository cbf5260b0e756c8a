package appservice

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"
)

// A delivered text is shown with the patient's read receipt on it. A receipt covers every
// earlier event of the room, so the receipts of one room are gathered for
// DeliveryReceiptDelay and only the newest delivered text is marked: a reply in ten parts
// costs the homeserver one receipt, not ten. In one make bench outbound phase (300 texts
// in 50 rooms over about 7 s, counted from the bridge's debug log) the bridge made 205
// receipt requests instead of 300; the throughput did not change measurably (with no
// receipts at all it did not either). Measured again in 2026-12 on a quiet machine, the
// bench's SQLite outbound phase five times in a row (stock, receipts paced at 5 a second in
// all rooms, none, paced, stock): 47–58 texts a second at c=8 and 47–59 at c=32 whatever
// the receipts, so pacing them was not kept; the homeserver's answer to the nurse's send
// sets that pace, not the receipts.
const DeliveryReceiptDelay = time.Second

// deliveryReceiptMemory is how long the newest text marked in a room is remembered, so
// that a delivery that arrives late for an older text does not move the receipt back.
const deliveryReceiptMemory = 10 * time.Minute

// Delivered is a text to show as delivered: its event in the room, when the outbox
// recorded it (texts of one conversation are sent in order), and who marks it.
type Delivered struct {
	Room  id.RoomID
	Event id.EventID
	Sent  time.Time
	Mark  func(ctx context.Context, room id.RoomID, event id.EventID) error
}

// markedText is the newest text marked in a room (when the outbox recorded it) and when.
type markedText struct{ sent, at time.Time }

// DeliveryReceipts gathers the delivered texts per room and marks each room's newest.
type DeliveryReceipts struct {
	ctx   context.Context
	delay time.Duration

	mu      sync.Mutex
	pending map[id.RoomID]*Delivered
	timers  map[id.RoomID]*time.Timer
	marked  map[id.RoomID]markedText // newest text marked per room, forgotten after deliveryReceiptMemory
	pruned  time.Time                // when marked was last rid of what it need not remember
	stopped bool
	running sync.WaitGroup
}

// NewDeliveryReceipts marks each room's newest delivered text delay after the first one
// waiting (DeliveryReceiptDelay in the bridge); the marks run in ctx, whose logger tells
// the ones that fail.
func NewDeliveryReceipts(ctx context.Context, delay time.Duration) *DeliveryReceipts {
	return &DeliveryReceipts{
		ctx: ctx, delay: delay,
		pending: map[id.RoomID]*Delivered{}, timers: map[id.RoomID]*time.Timer{},
		marked: map[id.RoomID]markedText{},
	}
}

// Add shows d as delivered within the delay, unless a newer text of its room is marked or
// waits to be.
func (dr *DeliveryReceipts) Add(d *Delivered) {
	dr.mu.Lock()
	if dr.stopped {
		dr.mu.Unlock()
		dr.markOne(d)
		return
	}
	defer dr.mu.Unlock()
	if newest, ok := dr.marked[d.Room]; ok && !d.Sent.After(newest.sent) {
		return
	}
	if p := dr.pending[d.Room]; p != nil && !d.Sent.After(p.Sent) {
		return
	}
	dr.pending[d.Room] = d
	if dr.timers[d.Room] == nil {
		dr.timers[d.Room] = time.AfterFunc(dr.delay, func() { dr.flush(d.Room) })
	}
}

// flush marks the room's newest delivered text.
func (dr *DeliveryReceipts) flush(room id.RoomID) {
	dr.mu.Lock()
	d := dr.pending[room]
	delete(dr.pending, room)
	delete(dr.timers, room)
	if d != nil {
		now := time.Now()
		dr.marked[room] = markedText{sent: d.Sent, at: now}
		if now.Sub(dr.pruned) > deliveryReceiptMemory {
			dr.pruned = now
			for r, m := range dr.marked {
				if now.Sub(m.at) > deliveryReceiptMemory {
					delete(dr.marked, r)
				}
			}
		}
		dr.running.Add(1)
	}
	dr.mu.Unlock()
	if d != nil {
		defer dr.running.Done()
		dr.markOne(d)
	}
}

func (dr *DeliveryReceipts) markOne(d *Delivered) {
	if err := d.Mark(dr.ctx, d.Room, d.Event); err != nil {
		zerolog.Ctx(dr.ctx).Err(err).Stringer("room_id", d.Room).Stringer("event_id", d.Event).
			Msg("Failed to show a delivered text with the patient's receipt")
	}
}

// Stop marks what waits at once and waits for the marks under way; later deliveries
// are marked as they come.
func (dr *DeliveryReceipts) Stop() {
	dr.mu.Lock()
	dr.stopped = true
	waiting := make([]*Delivered, 0, len(dr.pending))
	for room, d := range dr.pending {
		dr.timers[room].Stop() // a timer that already fired finds nothing pending
		waiting = append(waiting, d)
	}
	clear(dr.pending)
	clear(dr.timers)
	dr.mu.Unlock()
	for _, d := range waiting {
		dr.markOne(d)
	}
	dr.running.Wait()
}
