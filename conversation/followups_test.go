package conversation_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
)

// followUpClock is a clock the test moves.
type followUpClock struct{ ms atomic.Int64 }

func (c *followUpClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *followUpClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

const (
	kim     = "@kim:clinic.example"
	sentSID = "SM00000000000000000000000000000001" // what the fake outbox answers
)

func newFollowUps(e *env, clock *followUpClock, linked bool, startedAt time.Time) *conversation.FollowUps {
	return &conversation.FollowUps{S: e.svc, Keys: e.keys, Now: clock.now, StartedAt: startedAt,
		Linked: func(loginID string) bool { return linked && loginID == e.conv.LoginID }}
}

func startFollowUps(t *testing.T, ctx context.Context, f *conversation.FollowUps) {
	ctx, cancel := context.WithCancel(ctx)
	f.Start(ctx)
	t.Cleanup(func() { cancel(); f.Stop() })
}

func scheduledState(t *testing.T, ctx context.Context, e *env, id int64) database.ScheduledState {
	m, err := e.db.Scheduled().Get(ctx, id)
	require.NoError(t, err)
	require.NotNil(t, m)
	return m.State
}

func (r *rooms) noticeList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.notices...)
}

// A follow-up waits for its time by the injected clock, then is texted once, signed
// with the staff member's name, with a notice that carries Twilio's delivery updates.
func TestFollowUpIsTextedWhenDue(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		clock := &followUpClock{}
		clock.ms.Store(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC).UnixMilli())
		f := newFollowUps(e, clock, true, time.Now())
		startFollowUps(t, ctx, f)
		// The outbox records what Twilio accepted (the fake outbox answers with sentSID).
		require.NoError(t, e.db.Outbound.Insert(ctx, &database.Outbound{MessageSID: sentSID, LoginID: e.conv.LoginID,
			PortalID: e.conv.PortalID, Status: "queued", Kind: string(outbox.KindFollowUp)}))

		m, err := f.Schedule(ctx, e.conv, kim, clock.now().Add(time.Hour), "Please take your second dose now.")
		require.NoError(t, err)
		list, err := f.List(ctx, e.conv)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, "Please take your second dose now.", list[0].Text)

		time.Sleep(300 * time.Millisecond) // the scheduler looked once, woken by Schedule
		assert.Empty(t, e.texts.bodies(), "nothing is texted before its time")
		assert.Equal(t, database.ScheduledPending, scheduledState(t, ctx, e, m.ID))

		clock.advance(time.Hour)
		f.Wake()
		require.Eventually(t, func() bool { return scheduledState(t, ctx, e, m.ID) == database.ScheduledSent },
			5*time.Second, 20*time.Millisecond)
		assert.Equal(t, []string{"follow_up: kim: Please take your second dose now."}, e.texts.bodies())
		require.Eventually(t, func() bool { return len(e.rooms.noticeList()) == 1 }, 5*time.Second, 20*time.Millisecond)
		assert.Equal(t, "Scheduled message 1 sent: Please take your second dose now.", e.rooms.noticeList()[0])
		out, err := e.db.Outbound.Get(ctx, sentSID)
		require.NoError(t, err)
		require.NotNil(t, out)
		assert.Equal(t, "$notice", out.EventID, "the text is tracked under its notice")
		assert.Equal(t, e.svc.BotMXID, out.SenderMXID)

		// Sent once: later passes find nothing due.
		clock.advance(time.Hour)
		f.Wake()
		time.Sleep(300 * time.Millisecond)
		assert.Len(t, e.texts.bodies(), 1)
	})
}

// In secure mode a follow-up goes into the secure chat (with an alert), never by SMS.
func TestFollowUpInSecureModeGoesToTheSecureChat(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		clock := &followUpClock{}
		clock.ms.Store(time.Now().UnixMilli())
		e.conv.Mode = database.ModeSecure
		require.NoError(t, e.db.Conversation.SetMode(ctx, e.conv.LoginID, e.conv.PortalID, database.ModeSecure))
		f := newFollowUps(e, clock, true, time.Now())
		m, err := f.Schedule(ctx, e.conv, kim, clock.now(), "Your lab results are in.")
		require.NoError(t, err)
		startFollowUps(t, ctx, f)
		require.Eventually(t, func() bool { return scheduledState(t, ctx, e, m.ID) == database.ScheduledSent },
			5*time.Second, 20*time.Millisecond)
		assert.Empty(t, e.texts.bodies(), "nothing clinical on SMS in secure mode")
		unread, err := e.db.Secure.UnreadStaffCount(ctx, e.conv.LoginID, e.conv.PortalID)
		require.NoError(t, err)
		assert.Equal(t, 1, unread)
		assert.Contains(t, e.rooms.calls, "alert")
		assert.Equal(t, []string{"🔒 Scheduled message 1 sent to the secure chat: Your lab results are in."}, e.rooms.noticeList())
	})
}

// What cannot be sent fails once, with the reason and the text in the room.
func TestFollowUpFailures(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		clock := &followUpClock{}
		clock.ms.Store(time.Now().UnixMilli())

		// Opted out: the outbox refuses it.
		e.texts.optedOut = true
		f := newFollowUps(e, clock, true, time.Now())
		optedOut, err := f.Schedule(ctx, e.conv, kim, clock.now(), "Reminder: appointment tomorrow.")
		require.NoError(t, err)
		startFollowUps(t, ctx, f)
		require.Eventually(t, func() bool { return scheduledState(t, ctx, e, optedOut.ID) == database.ScheduledFailed },
			5*time.Second, 20*time.Millisecond)
		f.Stop()
		require.Len(t, e.rooms.noticeList(), 1)
		assert.Equal(t, "⚠️ Scheduled message 1 was not sent: "+outbox.ErrOptedOut.Error()+". The text was: Reminder: appointment tomorrow.",
			e.rooms.noticeList()[0])

		// The clinic number unlinked: it waits a minute after start-up for the number to
		// load, then fails.
		e.texts.optedOut = false
		unlinked := newFollowUps(e, clock, false, time.Now())
		waiting, err := unlinked.Schedule(ctx, e.conv, kim, clock.now(), "Call us back.")
		require.NoError(t, err)
		startFollowUps(t, ctx, unlinked)
		time.Sleep(300 * time.Millisecond)
		assert.Equal(t, database.ScheduledPending, scheduledState(t, ctx, e, waiting.ID), "waits for its number to load")
		unlinked.Stop()
		late := newFollowUps(e, clock, false, time.Now().Add(-2*time.Minute))
		startFollowUps(t, ctx, late)
		require.Eventually(t, func() bool { return scheduledState(t, ctx, e, waiting.ID) == database.ScheduledFailed },
			5*time.Second, 20*time.Millisecond)
		late.Stop()
		assert.Contains(t, e.rooms.noticeList()[1], "was not sent: the clinic number is no longer linked. The text was: Call us back.")
		assert.Empty(t, e.texts.bodies())
	})
}

// A follow-up whose send a stop interrupted (claimed, no outcome) is reported to staff at
// the next start, never sent again: Twilio may have taken it.
func TestInterruptedFollowUpIsReportedNotResent(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		clock := &followUpClock{}
		clock.ms.Store(time.Now().UnixMilli())
		f := newFollowUps(e, clock, true, time.Now())
		m, err := f.Schedule(ctx, e.conv, kim, clock.now(), "Take 2 tablets.")
		require.NoError(t, err)
		claimed, err := e.db.Scheduled().Claim(ctx, m.ID)
		require.NoError(t, err)
		require.True(t, claimed)

		startFollowUps(t, ctx, f)
		require.Eventually(t, func() bool { return scheduledState(t, ctx, e, m.ID) == database.ScheduledFailed },
			5*time.Second, 20*time.Millisecond)
		time.Sleep(300 * time.Millisecond)
		assert.Empty(t, e.texts.bodies(), "not sent again")
		notices := e.rooms.noticeList()
		require.Len(t, notices, 1)
		assert.Contains(t, notices[0], "may not have reached the patient")
		assert.True(t, strings.HasSuffix(notices[0], "The text was: Take 2 tablets."))
	})
}

// Schedule refuses a text too long to send; Cancel says why nothing was cancelled.
func TestFollowUpRefusalsAndCancel(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		clock := &followUpClock{}
		clock.ms.Store(time.Now().UnixMilli())
		f := newFollowUps(e, clock, true, time.Now())

		_, err := f.Schedule(ctx, e.conv, kim, clock.now().Add(time.Hour), strings.Repeat("a", 160*11))
		var tooMany *conversation.TooManySegmentsError
		require.ErrorAs(t, err, &tooMany)
		assert.Equal(t, 10, tooMany.Limit)
		pending, err := e.db.Scheduled().ListPending(ctx, e.conv.LoginID, e.conv.PortalID)
		require.NoError(t, err)
		assert.Empty(t, pending, "a refused follow-up is not stored")

		m, err := f.Schedule(ctx, e.conv, kim, clock.now().Add(time.Hour), "See you Monday.")
		require.NoError(t, err)
		require.NoError(t, f.Cancel(ctx, e.conv, database.StaffActor(kim), m.ID))
		err = f.Cancel(ctx, e.conv, database.StaffActor(kim), m.ID)
		var notCancellable *conversation.NotCancellableError
		require.ErrorAs(t, err, &notCancellable)
		assert.Equal(t, database.ScheduledCancelled, notCancellable.State)
		assert.True(t, errors.Is(f.Cancel(ctx, e.conv, database.StaffActor(kim), 999), conversation.ErrNoFollowUp))
		other := &database.Conversation{LoginID: e.conv.LoginID, PortalID: "15559999999"}
		assert.True(t, errors.Is(f.Cancel(ctx, other, database.StaffActor(kim), m.ID), conversation.ErrNoFollowUp),
			"another conversation's follow-up is not this one's")
	})
}
