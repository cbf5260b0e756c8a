package bridge

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"
)

func newLanes() *Connector {
	c := &Connector{}
	c.roomLanes.lanes = map[id.RoomID]*roomLane{}
	return c
}

// TestLanesRunRoomsConcurrentlyEachInOrder: a room's jobs run one after another in the
// order given, while another room's run beside them (a job waiting for the other room
// would wait forever if rooms took turns).
func TestLanesRunRoomsConcurrentlyEachInOrder(t *testing.T) {
	c := newLanes()
	started := make(chan struct{})
	done := make(chan struct{})
	c.inLane("!a:x", func() {
		close(started)
		<-done // held until room b's job ran
	})
	c.inLane("!b:x", func() {
		<-started
		close(done)
	})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("room b's job waited for room a's")
	}

	var mu sync.Mutex
	got := map[id.RoomID][]int{}
	var wg sync.WaitGroup
	for r := range 8 {
		room := id.RoomID(fmt.Sprintf("!%d:x", r))
		for n := range 200 {
			wg.Add(1)
			c.inLane(room, func() {
				defer wg.Done()
				mu.Lock()
				got[room] = append(got[room], n)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	for r := range 8 {
		room := id.RoomID(fmt.Sprintf("!%d:x", r))
		require.Len(t, got[room], 200)
		for n, v := range got[room] {
			assert.Equal(t, n, v, "room %s ran its jobs in order", room)
		}
	}
	assert.Eventually(t, func() bool {
		c.roomLanes.mu.Lock()
		defer c.roomLanes.mu.Unlock()
		return len(c.roomLanes.lanes) == 0
	}, 5*time.Second, 10*time.Millisecond, "idle lanes are dropped")
}

// TestTransactionSentAgainIsRecognised: a transaction the homeserver sends again while
// it is handled, or after it was answered, is not dispatched twice; one that failed is.
func TestTransactionSentAgainIsRecognisedConcurrently(t *testing.T) {
	c := newLanes()
	c.roomLanes.inFlight = map[string]chan struct{}{}
	done, first := c.startTransaction("t1")
	require.True(t, first)
	again, first := c.startTransaction("t1")
	assert.False(t, first, "in flight")
	c.finishTransaction("t1", done, true)
	select {
	case <-again:
	default:
		t.Fatal("the retry waits for the first to be answered")
	}
	_, first = c.startTransaction("t1")
	assert.False(t, first, "answered")

	done, first = c.startTransaction("t2")
	require.True(t, first)
	c.finishTransaction("t2", done, false)
	_, first = c.startTransaction("t2")
	assert.True(t, first, "a transaction not answered is handled again")
}
