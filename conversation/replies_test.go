package conversation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/conversation"
)

// An emergency phrase marks the conversation urgent, texts the emergency reply once per
// interval and tells the room which phrase matched; other texts do nothing.
func TestEmergencyReply(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		e.svc.Config.Emergency.Phrases = []string{"chest pain"}
		e.svc.Config.Emergency.Reply = "{clinic_name}: if this is an emergency, call 911."
		clock := &followUpClock{}
		clock.ms.Store(time.Now().UnixMilli())
		r := &conversation.AutoReplies{S: e.svc, Now: clock.now}

		assert.False(t, r.Emergency(ctx, e.conv, "my appointment is on monday"))
		assert.Empty(t, e.texts.bodies())

		assert.True(t, r.Emergency(ctx, e.conv, "I have CHEST PAIN since this morning"))
		assert.Equal(t, []string{"auto_reply: Riverside Clinic: if this is an emergency, call 911."}, e.texts.bodies())
		stored, err := e.db.Conversation.Get(ctx, e.conv.LoginID, e.conv.PortalID)
		require.NoError(t, err)
		assert.True(t, stored.Urgent, "marked urgent")
		require.Len(t, e.rooms.noticeList(), 1)
		assert.Contains(t, e.rooms.noticeList()[0], "“chest pain”")
		assert.Contains(t, e.rooms.noticeList()[0], "was texted to the patient")

		// Again at once: urgent still, the reply not texted twice.
		assert.True(t, r.Emergency(ctx, e.conv, "chest pain again"))
		assert.Len(t, e.texts.bodies(), 1)

		// Opted out: nothing texted, the room told to call.
		e.conv.OptedOut = true
		clock.advance(24 * time.Hour)
		e.texts.optedOut = true
		assert.True(t, r.Emergency(ctx, e.conv, "chest pain"))
		assert.Len(t, e.texts.bodies(), 1)
		notices := e.rooms.noticeList()
		assert.Contains(t, notices[len(notices)-1], "opted out (STOP): no emergency reply was texted")
	})
}

// Outside business hours the patient gets the after-hours reply once per closed period.
func TestAfterHoursReply(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		e.svc.Config.BusinessHours.TimeZone = "UTC"
		e.svc.Config.BusinessHours.Weekly = map[string]string{"mon": "09:00-17:00", "tue": "09:00-17:00",
			"wed": "09:00-17:00", "thu": "09:00-17:00", "fri": "09:00-17:00", "sat": "closed", "sun": "closed"}
		e.svc.Config.BusinessHours.AfterHoursReply = "{clinic_name} is closed now."
		clock := &followUpClock{}
		// Monday 7 December 2026, 10:00 UTC: open.
		clock.ms.Store(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC).UnixMilli())
		r := &conversation.AutoReplies{S: e.svc, Now: clock.now}

		r.AfterHours(ctx, e.conv)
		assert.Empty(t, e.texts.bodies(), "open: no reply")

		clock.advance(9 * time.Hour) // 19:00, closed
		r.AfterHours(ctx, e.conv)
		require.Len(t, e.texts.bodies(), 1)
		assert.True(t, strings.HasPrefix(e.texts.bodies()[0], "auto_reply: Riverside Clinic is closed now."), e.texts.bodies()[0])
		stored, err := e.db.Conversation.Get(ctx, e.conv.LoginID, e.conv.PortalID)
		require.NoError(t, err)
		r.AfterHours(ctx, stored)
		assert.Len(t, e.texts.bodies(), 1, "once per closed period")
		require.Len(t, e.rooms.noticeList(), 1)
		assert.Contains(t, e.rooms.noticeList()[0], "🌙 After hours")

		clock.advance(24 * time.Hour) // Tuesday 19:00: the next closed period
		stored, err = e.db.Conversation.Get(ctx, e.conv.LoginID, e.conv.PortalID)
		require.NoError(t, err)
		r.AfterHours(ctx, stored)
		assert.Len(t, e.texts.bodies(), 2)
	})
}
