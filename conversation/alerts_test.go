package conversation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
)

func secureConversation(t *testing.T, ctx context.Context, e *env) {
	require.NoError(t, e.db.Conversation.SetMode(ctx, e.conv.LoginID, e.conv.PortalID, database.ModeSecure))
	e.conv.Mode = database.ModeSecure
}

func startAlerter(t *testing.T, ctx context.Context, e *env, clock *followUpClock) *conversation.Alerter {
	a := &conversation.Alerter{S: e.svc, Now: clock.now}
	ctx, cancel := context.WithCancel(ctx)
	a.Start(ctx)
	t.Cleanup(func() { cancel(); a.Stop() })
	return a
}

// keepStaffMessage is a staff message kept for the secure chat, as the bridge keeps one.
func keepStaffMessage(t *testing.T, ctx context.Context, e *env, a *conversation.Alerter, text string) {
	_, err := e.svc.Secure.AddStaffMessage(ctx, e.conv, database.StaffActor(kim), "Kim", database.SecureText, text, "", nil, "")
	require.NoError(t, err)
	a.StaffMessageKept(ctx, e.conv)
}

func (t *texts) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sent)
}

// A lab result sent 7 minutes after the first alert (quiet period 10 minutes) is alerted
// when the quiet period ends, by the injected clock; the patient who chose Spanish on the
// page gets it in Spanish.
func TestHeldBackAlertIsTextedWhenTheQuietPeriodEnds(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		e.svc.Config.SecureChat.AlertQuietPeriod = 10 * time.Minute
		secureConversation(t, ctx, e)
		require.NoError(t, e.db.Conversation.SetPatientLanguage(ctx, e.conv.LoginID, e.conv.PortalID, "es"))
		clock := &followUpClock{}
		clock.ms.Store(time.Now().UnixMilli())
		a := startAlerter(t, ctx, e, clock)

		keepStaffMessage(t, ctx, e, a, "Your appointment is confirmed.")
		require.Eventually(t, func() bool { return e.texts.count() == 1 }, 5*time.Second, 20*time.Millisecond)

		clock.advance(7 * time.Minute)
		keepStaffMessage(t, ctx, e, a, "Your lab results are in.")
		time.Sleep(300 * time.Millisecond)
		assert.Equal(t, 1, e.texts.count(), "held back by the quiet period")

		clock.advance(3*time.Minute + time.Second)
		a.Wake()
		require.Eventually(t, func() bool { return e.texts.count() == 2 }, 5*time.Second, 20*time.Millisecond)
		for _, body := range e.texts.bodies() {
			assert.True(t, strings.HasPrefix(body, "alert: Riverside Clinic: tiene un mensaje seguro nuevo. Ábralo aquí: https://clinic.example/"), body)
		}
		// Texted once: later passes find nothing due.
		clock.advance(time.Hour)
		a.Wake()
		time.Sleep(300 * time.Millisecond)
		assert.Equal(t, 2, e.texts.count())
	})
}

// A held-back alert is dropped when the patient read everything meanwhile; a patient who
// opted out gets no alert, and the room is told.
func TestAlertDroppedWhenReadAndRefusedWhenOptedOut(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		e.svc.Config.SecureChat.AlertQuietPeriod = 10 * time.Minute
		secureConversation(t, ctx, e)
		clock := &followUpClock{}
		clock.ms.Store(time.Now().UnixMilli())
		a := startAlerter(t, ctx, e, clock)

		keepStaffMessage(t, ctx, e, a, "First.")
		require.Eventually(t, func() bool { return e.texts.count() == 1 }, 5*time.Second, 20*time.Millisecond)
		clock.advance(time.Minute)
		keepStaffMessage(t, ctx, e, a, "Second.")
		time.Sleep(200 * time.Millisecond)
		_, err := e.db.Secure.MarkRead(ctx, e.conv.LoginID, e.conv.PortalID, 1<<62, clock.now())
		require.NoError(t, err)
		clock.advance(10 * time.Minute)
		a.Wake()
		time.Sleep(500 * time.Millisecond)
		assert.Equal(t, 1, e.texts.count(), "read meanwhile: no alert")

		require.NoError(t, e.db.Conversation.SetOptedOut(ctx, e.conv.LoginID, e.conv.PortalID, true))
		clock.advance(time.Hour)
		keepStaffMessage(t, ctx, e, a, "Third.")
		require.Eventually(t, func() bool { return len(e.rooms.noticeList()) == 1 }, 5*time.Second, 20*time.Millisecond)
		assert.Equal(t, conversation.OptedOutAlertNotice, e.rooms.noticeList()[0])
		assert.Equal(t, 1, e.texts.count())
	})
}
