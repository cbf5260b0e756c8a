package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Rooms are handled in parallel, each in its own order, and nothing a staff member sent is
// lost when the bridge dies:
//
//   - bridgev2 queues each room's events to the room's own loop (bridge.portal_event_buffer
//     above 0, async_events off), so one room's slow event holds back only that room.
//   - The homeserver's transaction is answered only once every room it touched has handled
//     its events (a barrier queued behind them in each room's loop): a staff message is in
//     the outbox before the homeserver forgets it, and a transaction the bridge could not
//     finish (it is stopping) is answered with an error, so the homeserver sends it again
//     (bridgev2 then skips the messages it already handled: deduplicate_matrix_messages).
//   - A patient's text queued to its room is waited for (queueAndWait), so the inbound queue
//     still learns whether it reached the room.

const (
	// minPortalEventBuffer is the smallest per-room queue carebridge runs with.
	minPortalEventBuffer = 64
	// transactionHold bounds how long a transaction's answer waits for its rooms: past it the
	// answer goes anyway (the events stay queued), so one room stuck on a slow event cannot
	// stop the homeserver from sending the others' events.
	transactionHold = 20 * time.Second
	// queuedEventWait bounds the wait for one queued remote event (a room that is deleted
	// meanwhile drops it).
	queuedEventWait = 2 * time.Minute
	// maxTransactionSize is what the transaction hold reads to find the rooms (Synapse and
	// Dendrite send at most 100 and 50 events).
	maxTransactionSize = 64 << 20
)

// handledMarkType is the event the bridge puts behind a transaction's events in the
// appservice's event channel: when it is dispatched, every event of the transaction has
// been queued to its room.
var handledMarkType = event.Type{Type: "com.carebridge.transaction_dispatched", Class: event.MessageEventType}

// errStopping is the answer to a transaction the bridge could not finish handling.
var errStopping = errors.New("carebridge is stopping")

// roomHandling is what the portal queue keeps between a transaction and its mark.
type roomHandling struct {
	marks   sync.Map // mark ID → *transactionMark
	nextID  atomic.Uint64
	enabled bool
}

type transactionMark struct {
	rooms []id.RoomID
	// barriers is closed once a barrier is queued behind each room's events.
	barriers []chan struct{}
	queued   chan struct{}
}

// configurePortalQueue sets bridgev2 up for parallel rooms (Init).
func (c *Connector) configurePortalQueue(br *bridgev2.Bridge, mc *matrix.Connector) {
	if br.Config.PortalEventBuffer < minPortalEventBuffer {
		if br.Config.PortalEventBuffer != 0 {
			br.Log.Warn().Int("configured", br.Config.PortalEventBuffer).Int("using", minPortalEventBuffer).
				Msg("bridge.portal_event_buffer is small; carebridge uses a larger per-room queue")
		}
		br.Config.PortalEventBuffer = minPortalEventBuffer
	}
	if br.Config.AsyncEvents {
		br.Log.Warn().Msg("carebridge requires bridge.async_events: false (a room's messages leave in order); using false")
		br.Config.AsyncEvents = false
	}
	// A transaction sent again after a crash must not send a staff message twice.
	br.Config.DeduplicateMatrixMessages = true
	if mc == nil || mc.AS == nil || mc.EventProcessor == nil {
		return
	}
	c.rooms.enabled = true
	mc.EventProcessor.On(handledMarkType, c.onTransactionDispatched)
	mc.AS.Middleware = append(mc.AS.Middleware, c.holdTransactions)
}

// holdTransactions answers a homeserver transaction only once the rooms it touched have
// handled its events (or transactionHold passed). bridgev2 answers as soon as the events
// are in its channel; the answer is kept back, not changed.
func (c *Connector) holdTransactions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, "/_matrix/app/v1/transactions/") || !c.rooms.enabled {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxTransactionSize))
		_ = r.Body.Close()
		if err != nil {
			http.Error(w, "failed to read the transaction", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		held := &heldResponse{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(held, r)
		if held.status == http.StatusOK {
			if err = c.awaitRooms(r.Context(), roomsOf(body)); err != nil {
				zerolog.Ctx(r.Context()).Warn().Err(err).Msg("Transaction not finished; the homeserver will send it again")
				w.Header().Set("Retry-After", "1")
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		held.writeTo(w)
	})
}

// roomsOf lists the rooms of a transaction's room events, each once.
func roomsOf(body []byte) []id.RoomID {
	var txn struct {
		Events []struct {
			RoomID id.RoomID `json:"room_id"`
		} `json:"events"`
		Ephemeral []struct {
			RoomID id.RoomID `json:"room_id"`
		} `json:"de.sorunome.msc2409.ephemeral"`
		EphemeralStable []struct {
			RoomID id.RoomID `json:"room_id"`
		} `json:"ephemeral"`
	}
	if json.Unmarshal(body, &txn) != nil {
		return nil
	}
	seen := map[id.RoomID]bool{}
	var rooms []id.RoomID
	add := func(room id.RoomID) {
		if room != "" && !seen[room] {
			seen[room] = true
			rooms = append(rooms, room)
		}
	}
	for _, evt := range txn.Events {
		add(evt.RoomID)
	}
	for _, evt := range txn.Ephemeral {
		add(evt.RoomID)
	}
	for _, evt := range txn.EphemeralStable {
		add(evt.RoomID)
	}
	return rooms
}

// awaitRooms waits until each room's loop has handled what was queued to it before now.
func (c *Connector) awaitRooms(ctx context.Context, rooms []id.RoomID) error {
	if len(rooms) == 0 {
		return nil
	}
	mc, ok := c.Bridge.Matrix.(*matrix.Connector)
	if !ok {
		return nil
	}
	mark := &transactionMark{rooms: rooms, queued: make(chan struct{})}
	markID := c.rooms.nextID.Add(1)
	c.rooms.marks.Store(markID, mark)
	defer c.rooms.marks.Delete(markID)
	deadline := time.NewTimer(transactionHold)
	defer deadline.Stop()
	stopping := c.Bridge.BackgroundCtx.Done()
	// Behind the transaction's events in the one channel bridgev2 dispatches in order.
	select {
	case mc.AS.Events <- &event.Event{Type: handledMarkType, ID: id.EventID("$carebridge-mark-" + strconv.FormatUint(markID, 10))}:
	case <-stopping:
		return errStopping
	case <-deadline.C:
		return c.heldTooLong(ctx, len(rooms))
	}
	select {
	case <-mark.queued:
	case <-stopping:
		return errStopping
	case <-deadline.C:
		return c.heldTooLong(ctx, len(rooms))
	}
	for _, done := range mark.barriers {
		select {
		case <-done:
		case <-stopping:
			return errStopping
		case <-deadline.C:
			return c.heldTooLong(ctx, len(rooms))
		}
	}
	return nil
}

// heldTooLong lets a transaction go whose rooms are still busy: their events stay queued.
func (c *Connector) heldTooLong(ctx context.Context, rooms int) error {
	if c.Bridge.BackgroundCtx.Err() != nil {
		return errStopping
	}
	zerolog.Ctx(ctx).Warn().Int("rooms", rooms).Dur("held", transactionHold).
		Msg("A room is still handling the transaction's events; answering the homeserver anyway")
	return nil
}

// onTransactionDispatched runs in the appservice's dispatch loop after the transaction's
// events: it queues a barrier behind them in each room's loop.
func (c *Connector) onTransactionDispatched(ctx context.Context, evt *event.Event) {
	markID, err := strconv.ParseUint(strings.TrimPrefix(evt.ID.String(), "$carebridge-mark-"), 10, 64)
	if err != nil {
		return
	}
	value, ok := c.rooms.marks.Load(markID)
	if !ok {
		return
	}
	mark := value.(*transactionMark)
	defer close(mark.queued)
	for _, roomID := range mark.rooms {
		portal, err := c.Bridge.GetPortalByMXID(ctx, roomID)
		if err != nil || portal == nil {
			continue // not a conversation room: its events were handled in the dispatch loop
		}
		login := c.Bridge.GetCachedUserLoginByID(portal.Receiver)
		if login == nil {
			continue
		}
		b := &barrier{key: portal.PortalKey, done: make(chan struct{})}
		if res := c.Bridge.QueueRemoteEvent(login, b); res.Queued {
			mark.barriers = append(mark.barriers, b.done)
		}
	}
}

// barrier is a remote event that does nothing in a room's loop but say it got its turn.
type barrier struct {
	key  networkid.PortalKey
	done chan struct{}
	once sync.Once
}

var (
	_ bridgev2.RemoteEvent                = (*barrier)(nil)
	_ bridgev2.RemotePreHandlerWithResult = (*barrier)(nil)
)

func (b *barrier) GetType() bridgev2.RemoteEventType               { return bridgev2.RemoteEventUnknown }
func (b *barrier) GetPortalKey() networkid.PortalKey               { return b.key }
func (b *barrier) AddLogContext(c zerolog.Context) zerolog.Context { return c.Bool("barrier", true) }
func (b *barrier) GetSender() bridgev2.EventSender                 { return bridgev2.EventSender{} }

func (b *barrier) PreHandleWithResult(context.Context, *bridgev2.Portal) *bridgev2.EventHandlingResult {
	b.once.Do(func() { close(b.done) })
	res := bridgev2.EventHandlingResultIgnored
	return &res
}

// waitedEvent is a remote event whose handling in its room's loop reports the result.
type waitedEvent struct {
	bridgev2.RemoteEvent
	source *bridgev2.UserLogin
	result chan bridgev2.EventHandlingResult
}

var (
	_ bridgev2.RemotePreHandlerWithResult     = (*waitedEvent)(nil)
	_ bridgev2.RemoteEventWithContextMutation = (*waitedEvent)(nil)
	_ bridgev2.RemoteEventThatMayCreatePortal = (*waitedEvent)(nil)
)

// MutateContext passes on the event's own context (its stable transaction IDs): only the
// methods of bridgev2.RemoteEvent are promoted from the wrapped event.
func (w *waitedEvent) MutateContext(ctx context.Context) context.Context {
	if mutating, ok := w.RemoteEvent.(bridgev2.RemoteEventWithContextMutation); ok {
		return mutating.MutateContext(ctx)
	}
	return ctx
}

// ShouldCreatePortal passes on whether the event may create its room.
func (w *waitedEvent) ShouldCreatePortal() bool {
	creating, ok := w.RemoteEvent.(bridgev2.RemoteEventThatMayCreatePortal)
	return ok && creating.ShouldCreatePortal()
}

// PreHandleWithResult is called in the room's loop (after bridgev2 created the room where
// the event may do so): the event is handled here, and its result handed to the waiter.
func (w *waitedEvent) PreHandleWithResult(ctx context.Context, portal *bridgev2.Portal) *bridgev2.EventHandlingResult {
	res := bridgev2.EventHandlingResultFailed.WithError(fmt.Errorf("handling of the event panicked"))
	defer func() { w.result <- res }()
	res = portal.Internal().HandleRemoteEvent(ctx, w.source, w.RemoteEvent.GetType(), w.RemoteEvent)
	return &res
}

// queueAndWait queues a remote event to its room's loop and waits until it was handled
// there, returning bridgev2's result.
func (c *Connector) queueAndWait(ctx context.Context, login *bridgev2.UserLogin, evt bridgev2.RemoteEvent) bridgev2.EventHandlingResult {
	w := &waitedEvent{RemoteEvent: evt, source: login, result: make(chan bridgev2.EventHandlingResult, 1)}
	res := c.Bridge.QueueRemoteEvent(login, w)
	if !res.Queued {
		select {
		case handled := <-w.result:
			return handled // handled in this goroutine (no per-room queue)
		default:
			return res // not queued at all (no room, bridge stopping)
		}
	}
	timeout := time.NewTimer(queuedEventWait)
	defer timeout.Stop()
	select {
	case handled := <-w.result:
		return handled
	case <-ctx.Done():
		return bridgev2.EventHandlingResultFailed.WithError(ctx.Err())
	case <-c.Bridge.BackgroundCtx.Done():
		return bridgev2.EventHandlingResultFailed.WithError(errStopping)
	case <-timeout.C:
		return bridgev2.EventHandlingResultFailed.WithError(fmt.Errorf("the room did not handle the event within %s", queuedEventWait))
	}
}

// heldResponse keeps bridgev2's answer to a transaction until its rooms are done.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header         { return h.header }
func (h *heldResponse) Write(p []byte) (int, error) { return h.body.Write(p) }
func (h *heldResponse) WriteHeader(status int)      { h.status = status }

func (h *heldResponse) writeTo(w http.ResponseWriter) {
	for key, values := range h.header {
		w.Header()[key] = values
	}
	w.WriteHeader(h.status)
	_, _ = w.Write(h.body.Bytes())
}
