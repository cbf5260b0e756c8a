package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestRoomsDoNotWaitForEachOther: staff in 8 rooms reply at once while every Twilio call
// takes 400 ms, and then again while one conversation's send hangs for 12 s; each time the
// replies of the other rooms reach Twilio within a second of the last one being sent.
func TestRoomsDoNotWaitForEachOther(t *testing.T) { eachDB(t, runRoomsDoNotWaitForEachOther) }

func outboxPatient(i int) string { return fmt.Sprintf("+1555123460%d", i) }

// openRooms has each patient text the clinic and returns the nurse's room of each.
func openRooms(t *testing.T, ctx context.Context, e *env, nurse *testenv.StaffAgent, patients int) []string {
	t.Helper()
	rooms := make([]string, patients)
	for i := range patients {
		res, err := e.fake.SendInbound(ctx, outboxPatient(i), clinicPhone, fmt.Sprintf("Hello, this is patient %d", i))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, res.Body)
	}
	for i := range patients {
		m, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.Body == fmt.Sprintf("Hello, this is patient %d", i) })
		require.NoError(t, err)
		rooms[i] = m.RoomID
	}
	return rooms
}

// replyInAll has the nurse reply in every room at once and returns when the homeserver
// accepted the last reply.
func replyInAll(t *testing.T, ctx context.Context, nurse *testenv.StaffAgent, rooms []string, round string) time.Time {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last time.Time
	for i, room := range rooms {
		wg.Go(func() {
			_, _, err := nurse.Send(ctx, room, fmt.Sprintf("%s reply to patient %d", round, i))
			assert.NoError(t, err)
			mu.Lock()
			if now := time.Now(); now.After(last) {
				last = now
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return last
}

// atTwilio waits until Twilio has the round's reply for each of the patients and returns
// how long after `since` the last one arrived.
func atTwilio(t *testing.T, ctx context.Context, e *env, round string, patients []int, since time.Time) time.Duration {
	t.Helper()
	want := map[string]bool{}
	for _, i := range patients {
		want[fmt.Sprintf("nurse: %s reply to patient %d", round, i)] = true
	}
	_, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool {
		delete(want, m.Body)
		return len(want) == 0
	})
	require.NoError(t, err, "Twilio is missing %v", want)
	return time.Since(since)
}

func runRoomsDoNotWaitForEachOther(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	rooms := openRooms(t, ctx, e, nurse, 8)
	e.fake.SetLatency(400*time.Millisecond, 400*time.Millisecond)
	all := []int{0, 1, 2, 3, 4, 5, 6, 7}

	sent := replyInAll(t, ctx, nurse, rooms, "first")
	took := atTwilio(t, ctx, e, "first", all, sent)
	t.Logf("[%s] 8 rooms replying at once, Twilio at 400 ms a call: the last reply was at Twilio %v after the last was sent",
		kind, took.Round(time.Millisecond))
	assert.Less(t, took, time.Second, "the rooms' replies went to Twilio side by side, not one after another")

	// One conversation's send hangs 12 s at Twilio.
	e.fake.HangSends(outboxPatient(0), 12*time.Second)
	sent = replyInAll(t, ctx, nurse, rooms, "second")
	took = atTwilio(t, ctx, e, "second", all[1:], sent)
	t.Logf("[%s] one send hanging 12 s: the other 7 rooms' replies were at Twilio %v after the last was sent",
		kind, took.Round(time.Millisecond))
	assert.Less(t, took, time.Second, "a hung send holds back only its own conversation")
	assert.Zero(t, countFake(e, "nurse: second reply to patient 0"), "the hung reply is not at Twilio yet")
	e.fake.HangSends(outboxPatient(0), 0)
	atTwilio(t, ctx, e, "second", []int{0}, sent)
}

func countFake(e *env, body string) (n int) {
	for _, m := range e.fake.Messages() {
		if m.Body == body {
			n++
		}
	}
	return n
}

// TestKilledWhileTwilioHangsLosesNothing: 50 staff replies across 10 rooms are accepted
// while every send hangs at Twilio: for 5 rooms before Twilio took the text, for the other
// 5 after (Twilio sent it; its answer never came). The bridge is killed (SIGKILL) and
// started again: all 50 reach the patients, once each, in order within each room.
func TestKilledWhileTwilioHangsLosesNothing(t *testing.T) { eachDB(t, runKilledWhileTwilioHangs) }

func runKilledWhileTwilioHangs(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	const patients, perRoom = 10, 5
	rooms := openRooms(t, ctx, e, nurse, patients)
	for i := range patients {
		if i%2 == 0 {
			e.fake.HangSends(outboxPatient(i), 10*time.Minute)
		} else {
			e.fake.HangAnswers(outboxPatient(i), 10*time.Minute)
		}
	}
	var release func()
	for n := range perRoom {
		if n == perRoom-1 {
			// The last round reaches the bridge while it cannot store anything: killed then,
			// a bridge that answered the homeserver before storing would lose the round.
			release = holdOutbox(t, ctx, e.db)
		}
		var wg sync.WaitGroup
		for i, room := range rooms {
			wg.Go(func() {
				_, _, err := nurse.Send(ctx, room, fmt.Sprintf("reply %d to patient %d", n, i))
				assert.NoError(t, err)
			})
		}
		wg.Wait()
	}
	// Killed the moment the homeserver accepted the last reply: the bridge answers a
	// transaction only once its replies are in the outbox, so whatever it had not stored
	// the homeserver still holds and sends again after the restart.
	time.Sleep(2 * time.Second) // the homeserver hands the round to the bridge
	stored := outboxRows(t, e.db)
	e.br.Kill()
	release()
	t.Logf("[%s] killed with %d of %d replies in the outbox", kind, stored, patients*perRoom)
	for i := range patients {
		e.fake.HangSends(outboxPatient(i), 0)
		e.fake.HangAnswers(outboxPatient(i), 0)
	}
	e.br.Restart()

	for i := range patients {
		var want []string
		for n := range perRoom {
			want = append(want, fmt.Sprintf("nurse: reply %d to patient %d", n, i))
		}
		_, err := e.fake.WaitForMessage(ctx, func(testenv.FakeMessage) bool { return len(fakeBodies(e, outboxPatient(i))) >= perRoom })
		require.NoError(t, err, "patient %d got %d of %d replies", i, len(fakeBodies(e, outboxPatient(i))), perRoom)
		time.Sleep(200 * time.Millisecond) // a duplicate would arrive about now
		assert.Equal(t, want, fakeBodies(e, outboxPatient(i)), "each reply once, in the order the nurse sent them")
	}
}

func fakeBodies(e *env, to string) (out []string) {
	for _, m := range e.fake.Messages() {
		if m.To == to && strings.HasPrefix(m.Body, "nurse: reply") {
			out = append(out, m.Body)
		}
	}
	return out
}

// holdOutbox keeps the bridge from storing texts in its outbox (a write lock on the table,
// on SQLite the database) until release is called.
func holdOutbox(t *testing.T, ctx context.Context, spec testenv.DBSpec) (release func()) {
	t.Helper()
	driver := "postgres"
	if spec.Type != "postgres" {
		driver = "sqlite3"
	}
	db, err := sql.Open(driver, spec.URI)
	require.NoError(t, err)
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE on SQLite (_txlock=immediate)
	require.NoError(t, err)
	if driver == "postgres" {
		_, err = tx.Exec("LOCK TABLE outbox_message IN EXCLUSIVE MODE")
		require.NoError(t, err)
	}
	return func() {
		_ = tx.Rollback()
		_ = db.Close()
	}
}

// outboxRows counts the texts the bridge has stored in its outbox.
func outboxRows(t *testing.T, spec testenv.DBSpec) (n int) {
	t.Helper()
	driver := "postgres"
	if spec.Type != "postgres" {
		driver = "sqlite3"
	}
	db, err := sql.Open(driver, spec.URI)
	require.NoError(t, err)
	defer db.Close()
	if err = db.QueryRow("SELECT COUNT(*) FROM outbox_message").Scan(&n); err != nil {
		return -1
	}
	return n
}
