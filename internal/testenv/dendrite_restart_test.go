package testenv

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestAgentSeesEverythingThroughRestart: a staff agent that keeps syncing while the
// homeserver is stopped in the middle of a stream of messages and started again sees
// every message of its rooms. Dendrite 0.13.8 hands a client that syncs through its restart a
// /sync token past events that are in the room, without a limited timeline (measured
// here with a plain client: 2 to 15 of about 120 messages missed in each of 8 runs, none
// without the restart), so the agent pages back (/messages) after its sync recovers.
func TestAgentSeesEverythingThroughRestart(t *testing.T) {
	RequireDep(t, DepNio, NioAvailable())
	hs := NewDendrite(t)
	hs.Start()
	hs.CreateUser(t, "doctor", "correct-horse-battery")
	nurseID := hs.CreateUser(t, "nurse", "staple-battery-horse")
	client := hs.Login(t, "doctor", "correct-horse-battery")
	client.DefaultHTTPRetries = 0
	nurse := StartStaffAgent(t, hs.URL(), nurseID, "staple-battery-horse")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const senders = 10
	var rooms [senders]id.RoomID
	for g := range senders {
		resp, err := client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{id.UserID(nurseID)}})
		require.NoError(t, err)
		rooms[g] = resp.RoomID
		_, err = nurse.WaitJoined(ctx, string(resp.RoomID))
		require.NoError(t, err)
	}

	var (
		mu    sync.Mutex
		acked []id.EventID
		stop  atomic.Bool
		wg    sync.WaitGroup
		n     atomic.Int64
	)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				sent, err := client.SendMessageEvent(ctx, rooms[g], event.EventMessage,
					&event.MessageEventContent{MsgType: event.MsgText, Body: fmt.Sprintf("sender %d text %d", g, i)})
				if err == nil {
					mu.Lock()
					acked = append(acked, sent.EventID)
					mu.Unlock()
					n.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	for n.Load() < 80 {
		time.Sleep(10 * time.Millisecond)
	}
	hs.Stop()
	time.Sleep(time.Second)
	hs.Restart()
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()

	timeline := map[id.EventID]bool{}
	var messages []id.EventID
	for _, roomID := range rooms {
		from := ""
		for {
			page, err := client.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, 100)
			require.NoError(t, err)
			for _, evt := range page.Chunk {
				timeline[evt.ID] = true
				if evt.Type == event.EventMessage {
					messages = append(messages, evt.ID)
				}
			}
			if page.End == "" || len(page.Chunk) == 0 {
				break
			}
			from = page.End
		}
	}
	var lost []id.EventID
	for _, evt := range acked {
		if !timeline[evt] {
			lost = append(lost, evt)
		}
	}
	if len(lost) > 0 {
		// Dendrite with its message queue in memory (as the tests run it) can lose an
		// event it acknowledged just before it stopped: the roomserver has it, the sync
		// API never gets it (seen once in about 25 restarts). With the queue on disk it
		// instead processes, after the restart, sends it had answered 500 to, and a
		// sender that retried meanwhile has two copies in the room.
		t.Logf("%d acknowledged events are not in their rooms after the restart (Dendrite's in-memory queue): %v", len(lost), lost)
	}

	// The agent's sync recovers within a few seconds; paging back follows.
	var missed []id.EventID
	deadline := time.Now().Add(30 * time.Second)
	for {
		seen := map[id.EventID]bool{}
		backfilled := 0
		for _, m := range nurse.Messages() {
			seen[id.EventID(m.EventID)] = true
			if m.Backfilled {
				backfilled++
			}
		}
		missed = missed[:0]
		for _, evt := range messages {
			if !seen[evt] {
				missed = append(missed, evt)
			}
		}
		if len(missed) == 0 {
			t.Logf("%d messages acknowledged, %d in the rooms; the agent saw them all, %d of them by paging back",
				len(acked), len(messages), backfilled)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not see %d of the rooms' %d messages: %v", len(missed), len(messages), missed)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
