package securechat

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

// replica is a `carebridge web` process's service over the fixture's database: the same
// keys and clock, and no Backend (it cannot reach Matrix or Twilio).
func (f *coreFixture) replica(t *testing.T) *Service {
	svc := NewServiceWithKeys(f.svc.DB, f.svc.Config, f.svc.Keys, f.svc.ClinicName, f.svc.PublicBase)
	svc.Now = f.svc.Now
	return svc
}

func (b *coreBackend) counts() (texts, msgs, reads int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.texts), len(b.msgs), len(b.reads)
}

// What the patient does on a replica reaches the bridge through the database, once: the
// code the bridge makes and texts, the message it puts into the room, the reading it shows.
func TestReplicaHandsOffToTheBridge(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		web := f.replica(t)
		token := f.link(t)

		require.NoError(t, web.SendCode(ctx, token, "es"))
		texts, _, _ := f.backend.counts()
		assert.Zero(t, texts, "the replica texts nothing itself")
		_, _, err := web.Verify(ctx, token, "123456", "")
		assert.ErrorIs(t, err, ErrNoCode, "no code until the bridge made one; no try counted")
		f.svc.DrainHandoffs(ctx)
		code := f.backend.lastCode(t)
		assert.Contains(t, f.backend.texts[0], "su código es "+code, "in the language of the page it was asked from")
		f.svc.DrainHandoffs(ctx)
		texts, _, _ = f.backend.counts()
		assert.Equal(t, 1, texts, "texted once")
		row, err := f.svc.DB.Link.Get(ctx, f.svc.Keys.Hash("link", token))
		require.NoError(t, err)
		assert.Zero(t, row.FailedCodes)
		session, _, err := web.Verify(ctx, token, code, "")
		require.NoError(t, err, "the replica checks the code the bridge texted")
		sess, err := web.Session(ctx, session)
		require.NoError(t, err)

		staff, err := f.svc.AddStaffMessage(ctx, f.conv, testNurse, "Nurse Kim", database.SecureText, "Your results are ready.", "", nil, "$staff")
		require.NoError(t, err)
		msgs, err := web.Messages(ctx, sess, 0)
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		sent, err := web.AddPatientMessage(ctx, sess, database.SecureText, "Thank you", "", nil)
		require.NoError(t, err, "stored: the bridge puts it into the room")
		assert.Empty(t, sent.EventID)
		_, delivered, reads := f.backend.counts()
		assert.Zero(t, delivered)
		assert.Zero(t, reads)

		f.svc.DrainHandoffs(ctx)
		f.svc.DrainHandoffs(ctx)
		_, delivered, reads = f.backend.counts()
		assert.Equal(t, 1, delivered, "in the room once")
		assert.Equal(t, "Thank you", f.backend.msgs[0].Text)
		eventID, err := f.svc.DB.Secure.EventID(ctx, sent.ID)
		require.NoError(t, err)
		assert.Equal(t, "$event", eventID)
		require.Equal(t, 1, reads, "the reading shown once")
		assert.Equal(t, staff.ID, f.backend.reads[0].ID)
		_, err = web.Messages(ctx, sess, 0)
		require.NoError(t, err)
		f.svc.DrainHandoffs(ctx)
		_, _, reads = f.backend.counts()
		assert.Equal(t, 1, reads, "nothing new read, nothing shown")

		// A code asked for on a link revoked before the bridge got to it is not texted.
		other := f.link(t)
		require.NoError(t, web.SendCode(ctx, other, "en"))
		require.NoError(t, f.svc.Revoke(ctx, f.conv, testNurse))
		f.svc.DrainHandoffs(ctx)
		texts, _, _ = f.backend.counts()
		assert.Equal(t, 1, texts)
		pending, err := f.svc.DB.Code.Pending(ctx, f.clock, 10)
		require.NoError(t, err)
		assert.Empty(t, pending, "and the request is settled")

		// A patient who opted out is told at once.
		require.NoError(t, f.svc.DB.Conversation.SetOptedOut(ctx, f.conv.LoginID, f.conv.PortalID, true))
		third := f.link(t)
		assert.ErrorIs(t, web.SendCode(ctx, third, "en"), ErrOptedOut)
	})
}

// With the bridge and a replica on one PostgreSQL database, a change either makes wakes
// the other's open pages, and what the replica hands off wakes the bridge at once (not at
// its next poll).
func TestLiveUpdatesCrossProcesses(t *testing.T) {
	f := newCoreFixture(t, "postgres")
	defer func(poll time.Duration) { handoffPoll = poll }(handoffPoll)
	handoffPoll = time.Hour
	ctx := zerolog.Nop().WithContext(context.Background())
	web := f.replica(t)
	require.NoError(t, web.Share(ctx, f.uri))
	defer web.Stop()
	require.NoError(t, f.svc.Share(ctx, f.uri))
	f.svc.StartHandoffs(ctx)
	defer f.svc.Stop()
	for _, svc := range []*Service{web, f.svc} {
		require.Eventually(t, func() bool { return svc.SignalsReady() == nil }, 10*time.Second, 20*time.Millisecond)
	}

	onReplica, stop := web.Hub.Subscribe(f.conv.LoginID, f.conv.PortalID)
	defer stop()
	onBridge, stopBridge := f.svc.Hub.Subscribe(f.conv.LoginID, f.conv.PortalID)
	defer stopBridge()
	elsewhere, stopElsewhere := web.Hub.Subscribe(f.conv.LoginID, "15559990000")
	defer stopElsewhere()
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("no signal: %s", what)
		}
	}
	_, err := f.svc.AddStaffMessage(ctx, f.conv, testNurse, "Nurse Kim", database.SecureText, "Please call us.", "", nil, "$staff")
	require.NoError(t, err)
	wait(onReplica, "the staff message the bridge stored, on the replica's page")
	wait(onBridge, "and on the bridge's own")
	select {
	case <-elsewhere:
		t.Fatal("another conversation's page was signalled")
	case <-time.After(200 * time.Millisecond):
	}

	// A staff member typing in the bridge's room shows on the replica's page, and stops.
	f.svc.StaffTyping(f.conv, "@nurse:clinic.example", "Nurse Kim", true)
	wait(onReplica, "staff typing, on the replica's page")
	act, err := web.activity(ctx, f.conv, "en")
	require.NoError(t, err)
	assert.Equal(t, "Nurse Kim is typing…", act.Typing)
	f.svc.StaffTyping(f.conv, "@nurse:clinic.example", "Nurse Kim", false)
	wait(onReplica, "typing stopped")
	act, err = web.activity(ctx, f.conv, "en")
	require.NoError(t, err)
	assert.Empty(t, act.Typing)
	select {
	case <-onBridge:
	default:
	}

	token := f.link(t)
	require.NoError(t, web.SendCode(ctx, token, "en"))
	require.Eventually(t, func() bool { texts, _, _ := f.backend.counts(); return texts == 1 }, 5*time.Second, 10*time.Millisecond,
		"the bridge texts the code the patient asked for on the replica")
	session, _, err := web.Verify(ctx, token, f.backend.lastCode(t), "")
	require.NoError(t, err)
	sess, err := web.Session(ctx, session)
	require.NoError(t, err)
	_, err = web.AddPatientMessage(ctx, sess, database.SecureText, "I will call at noon", "", nil)
	require.NoError(t, err)
	wait(onBridge, "the patient's message stored on the replica, on the bridge's pages")
	require.Eventually(t, func() bool { _, msgs, _ := f.backend.counts(); return msgs == 1 }, 5*time.Second, 10*time.Millisecond,
		"the bridge puts it into the room")
	_, err = web.Messages(ctx, sess, 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, _, reads := f.backend.counts(); return reads == 1 }, 5*time.Second, 10*time.Millisecond,
		"and shows the reading")
}

// A patient message stored by the bridge's own page while a pass redelivers is put into
// the room once.
func TestDeliveryOnceAcrossPasses(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		session, _, err := f.svc.Verify(ctx, token, f.backend.lastCode(t), "")
		require.NoError(t, err)
		sess, err := f.svc.Session(ctx, session)
		require.NoError(t, err)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 50 {
				_, _ = f.svc.RedeliverPending(ctx, 0)
			}
		}()
		for i := range 10 {
			_, err := f.svc.AddPatientMessage(ctx, sess, database.SecureText, "message "+string(rune('a'+i)), "", nil)
			require.NoError(t, err)
		}
		<-done
		_, msgs, _ := f.backend.counts()
		assert.Equal(t, 10, msgs, "each message once")
	})
}
