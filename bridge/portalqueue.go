package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Rooms are handled in parallel, each in its own order, and nothing a staff member sent is
// lost when the bridge dies:
//
//   - The room events of a homeserver transaction are dispatched by room: each room has a
//     lane that runs its events through bridgev2's handlers one after another (decrypting
//     them, then queuing them to the room's loop), while the lanes of different rooms run
//     side by side. bridgev2 alone dispatches every event of the clinic in one loop, where
//     decryption (a database write per event) made every room wait for every other.
//   - bridgev2 queues each room's events to the room's own loop (bridge.portal_event_buffer
//     above 0, async_events off), so one room's slow event holds back only that room.
//   - The transaction is answered only once every room it touched has handled its events
//     (a barrier queued behind them in each room's loop): a staff message is in the outbox
//     before the homeserver forgets it, and a transaction the bridge could not finish (it
//     is stopping) is answered with an error, so the homeserver sends it again (bridgev2
//     then skips the messages it already handled: deduplicate_matrix_messages).
//   - A patient's text queued to its room is waited for (queueAndWait), so the inbound queue
//     still learns whether it reached the room.

const (
	// minPortalEventBuffer is the smallest per-room queue carebridge runs with.
	minPortalEventBuffer = 64
	// transactionHold bounds how long a transaction's answer waits for its rooms: past it the
	// answer goes anyway (the events stay queued), so one room stuck on a slow event cannot
	// stop the homeserver from sending the others' events. Below Dendrite's 30 s timeout.
	transactionHold = 20 * time.Second
	// queuedEventWait bounds the wait for one queued remote event (a room that is deleted
	// meanwhile drops it).
	queuedEventWait = 2 * time.Minute
	// maxTransactionSize is the largest transaction body read (Synapse and Dendrite send at
	// most 100 and 50 events).
	maxTransactionSize = 64 << 20
	// transactionsRemembered is how many answered transaction IDs are kept to recognise a
	// homeserver's retry (mautrix keeps as many).
	transactionsRemembered = 128
)

// errStopping is the answer to a transaction the bridge could not finish handling.
var errStopping = errors.New("carebridge is stopping")

// roomHandling is the per-room dispatch of the homeserver's transactions.
type roomHandling struct {
	enabled bool
	mu      sync.Mutex
	lanes   map[id.RoomID]*roomLane
	// inFlight and answered recognise a transaction the homeserver sends again.
	inFlight map[string]chan struct{}
	answered []string
}

// roomLane runs one room's work in order.
type roomLane struct {
	jobs []func()
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
	if mc.EventProcessor.ExecMode != appservice.Sync {
		// A room's lane runs an event's handlers and then the next event's: in order.
		br.Log.Warn().Msg("carebridge requires appservice.async_transactions: false (a room's events are handled in order); using false")
		mc.Config.AppService.AsyncTransactions = false
		mc.EventProcessor.ExecMode = appservice.Sync
	}
	c.roomLanes.enabled = true
	c.roomLanes.lanes = map[id.RoomID]*roomLane{}
	c.roomLanes.inFlight = map[string]chan struct{}{}
	mc.AS.Middleware = append(mc.AS.Middleware, c.holdTransactions)
}

// inLane runs job after the jobs queued before it for the same room, beside other rooms'.
func (c *Connector) inLane(room id.RoomID, job func()) {
	c.roomLanes.mu.Lock()
	defer c.roomLanes.mu.Unlock()
	if lane, ok := c.roomLanes.lanes[room]; ok {
		lane.jobs = append(lane.jobs, job)
		return
	}
	lane := &roomLane{jobs: []func(){job}}
	c.roomLanes.lanes[room] = lane
	go func() {
		for {
			c.roomLanes.mu.Lock()
			if len(lane.jobs) == 0 {
				delete(c.roomLanes.lanes, room)
				c.roomLanes.mu.Unlock()
				return
			}
			next := lane.jobs[0]
			lane.jobs = lane.jobs[1:]
			c.roomLanes.mu.Unlock()
			next()
		}
	}()
}

// holdTransactions takes the room events out of a homeserver transaction and dispatches
// them by room (inLane), hands the rest (to-device events, receipts, device lists) to
// bridgev2 as it is, and answers once the rooms have handled their events (or
// transactionHold passed).
func (c *Connector) holdTransactions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const prefix = "/_matrix/app/v1/transactions/"
		mc, ok := c.Bridge.Matrix.(*matrix.Connector)
		if r.Method != http.MethodPut || !strings.HasPrefix(r.URL.Path, prefix) || !c.roomLanes.enabled || !ok {
			next.ServeHTTP(w, r)
			return
		}
		if !mc.AS.CheckServerToken(w, r) {
			return
		}
		txnID := strings.TrimPrefix(r.URL.Path, prefix)
		done, first := c.startTransaction(txnID)
		if !first {
			// Sent again while (or after) this process handled it: answered once handled.
			if err := c.awaitSignal(done); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		answered := false
		defer func() { c.finishTransaction(txnID, done, answered) }()
		body, err := io.ReadAll(io.LimitReader(r.Body, maxTransactionSize))
		_ = r.Body.Close()
		if err != nil {
			http.Error(w, "failed to read the transaction", http.StatusBadRequest)
			return
		}
		var fields map[string]json.RawMessage
		var events []*event.Event
		if err = json.Unmarshal(body, &fields); err == nil {
			if raw, ok := fields["events"]; ok {
				err = json.Unmarshal(raw, &events)
				delete(fields, "events")
			}
		}
		if err != nil {
			// bridgev2 answers it (M_BAD_JSON).
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
			return
		}
		ctx := c.Bridge.Log.With().Str("transaction_id", txnID).Logger().WithContext(c.Bridge.BackgroundCtx)
		// The rest first, as mautrix orders a transaction: the room keys (to-device) are
		// then on their way to the crypto loop before the rooms' messages are decrypted.
		rest, _ := json.Marshal(fields)
		r.Body = io.NopCloser(bytes.NewReader(rest))
		held := &heldResponse{header: http.Header{}, status: http.StatusOK}
		began := time.Now()
		next.ServeHTTP(held, r)
		barriers := c.dispatchByRoom(ctx, mc, events)
		if held.status == http.StatusOK {
			if err = c.awaitRooms(ctx, barriers); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Msg("Transaction not finished; the homeserver will send it again")
				w.Header().Set("Retry-After", "1")
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		answered = held.status == http.StatusOK
		zerolog.Ctx(ctx).Debug().Int("events", len(events)).Int("rooms", len(barriers)).
			Dur("took", time.Since(began)).Int("status", held.status).Msg("Answering transaction")
		held.writeTo(w)
	})
}

// startTransaction marks a transaction as being handled; first is false when it already
// is, or was answered, and done is closed once it is.
func (c *Connector) startTransaction(txnID string) (done chan struct{}, first bool) {
	c.roomLanes.mu.Lock()
	defer c.roomLanes.mu.Unlock()
	if done, ok := c.roomLanes.inFlight[txnID]; ok {
		return done, false
	}
	done = make(chan struct{})
	if slices.Contains(c.roomLanes.answered, txnID) {
		close(done)
		return done, false
	}
	c.roomLanes.inFlight[txnID] = done
	return done, true
}

// finishTransaction remembers an answered transaction (one that failed is forgotten, to be
// handled again when sent again).
func (c *Connector) finishTransaction(txnID string, done chan struct{}, answered bool) {
	c.roomLanes.mu.Lock()
	defer c.roomLanes.mu.Unlock()
	delete(c.roomLanes.inFlight, txnID)
	if answered {
		c.roomLanes.answered = append(c.roomLanes.answered, txnID)
		if len(c.roomLanes.answered) > transactionsRemembered {
			c.roomLanes.answered = c.roomLanes.answered[1:]
		}
	}
	close(done)
}

// dispatchByRoom hands each room's events, in order, to the room's lane, behind what the
// lane holds from earlier transactions; each lane then queues a barrier behind them in the
// room's loop. It returns a channel per room that is closed when its barrier had its turn
// (or the room has no loop to wait for).
func (c *Connector) dispatchByRoom(ctx context.Context, mc *matrix.Connector, events []*event.Event) []chan struct{} {
	byRoom := map[id.RoomID][]*event.Event{}
	var order []id.RoomID
	for _, evt := range events {
		// As soon as the transaction arrives, as mautrix does: the state store (who is in
		// each room) must not wait for a room's lane; the bridge encrypts for its members.
		prepareEvent(ctx, mc, evt)
		if _, ok := byRoom[evt.RoomID]; !ok {
			order = append(order, evt.RoomID)
		}
		byRoom[evt.RoomID] = append(byRoom[evt.RoomID], evt)
	}
	barriers := make([]chan struct{}, 0, len(order))
	for _, roomID := range order {
		done := make(chan struct{})
		barriers = append(barriers, done)
		roomEvents := byRoom[roomID]
		c.inLane(roomID, func() {
			for _, evt := range roomEvents {
				mc.EventProcessor.Dispatch(ctx, evt)
			}
			c.queueBarrier(ctx, roomID, done)
		})
	}
	return barriers
}

// prepareEvent does to a room event what mautrix's appservice does before dispatching it
// (appservice/http.go handleEvents): the time it arrived, its class, its parsed content,
// and the state store for state events.
func prepareEvent(ctx context.Context, mc *matrix.Connector, evt *event.Event) {
	evt.Mautrix.ReceivedAt = time.Now()
	if evt.StateKey != nil {
		evt.Mautrix.EventSource = event.SourceTimeline & event.SourceJoin
		evt.Type.Class = event.StateEventType
	} else {
		evt.Mautrix.EventSource = event.SourceTimeline
		evt.Type.Class = event.MessageEventType
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrUnsupportedContentType) {
		zerolog.Ctx(ctx).Warn().Err(err).Stringer("event_id", evt.ID).Str("event_type", evt.Type.Type).
			Msg("Failed to parse content of event")
	}
	if evt.Type.IsState() {
		mautrix.UpdateStateStore(ctx, mc.AS.StateStore, evt)
	}
}

// queueBarrier queues a barrier behind what was queued to the room's loop, closing done
// when it has its turn; at once when the room is no conversation (its events were handled
// in the lane).
func (c *Connector) queueBarrier(ctx context.Context, roomID id.RoomID, done chan struct{}) {
	portal, err := c.Bridge.GetPortalByMXID(ctx, roomID)
	var login *bridgev2.UserLogin
	if err == nil && portal != nil {
		login = c.Bridge.GetCachedUserLoginByID(portal.Receiver)
	}
	if login == nil {
		close(done)
		return
	}
	b := &barrier{key: portal.PortalKey, done: done}
	if res := c.Bridge.QueueRemoteEvent(login, b); !res.Queued {
		b.once.Do(func() { close(done) })
	}
}

// awaitSignal waits for done, or the bridge stopping.
func (c *Connector) awaitSignal(done chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-c.Bridge.BackgroundCtx.Done():
		return errStopping
	}
}

// awaitRooms waits until each room's barrier had its turn, transactionHold at most.
func (c *Connector) awaitRooms(ctx context.Context, barriers []chan struct{}) error {
	deadline := time.NewTimer(transactionHold)
	defer deadline.Stop()
	for _, done := range barriers {
		select {
		case <-done:
		case <-c.Bridge.BackgroundCtx.Done():
			return errStopping
		case <-deadline.C:
			zerolog.Ctx(ctx).Warn().Int("rooms", len(barriers)).Dur("held", transactionHold).
				Msg("A room is still handling the transaction's events; answering the homeserver anyway")
			return nil
		}
	}
	return nil
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
