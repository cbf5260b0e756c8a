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
	"github.com/carebridge/carebridge/workflow"
)

// The fake rooms mention the owner too.
func (r *rooms) MentionAssignee(_ context.Context, conv *database.Conversation) {
	r.record("mention " + conv.Assignee)
}

var _ conversation.Mentioner = (*rooms)(nil)

func newResponses(e *env, clock *followUpClock, firstReplies *[]time.Duration) *conversation.Responses {
	return &conversation.Responses{S: e.svc, Replies: &conversation.AutoReplies{S: e.svc, Now: clock.now}, Now: clock.now,
		FirstReply: func(wait time.Duration) { *firstReplies = append(*firstReplies, wait) }}
}

func TestTheFirstStaffReplyEndsTheWaitAndRecordsItsTime(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		clock := &followUpClock{}
		clock.ms.Store(time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC).UnixMilli())
		var waits []time.Duration
		r := newResponses(e, clock, &waits)

		r.StaffReplied(ctx, e.stored(t, ctx), "@nurse:clinic.example")
		assert.Empty(t, waits, "nobody waited")

		r.Waiting(ctx, e.conv.LoginID, e.conv.PortalID)
		clock.advance(10 * time.Minute)
		r.Waiting(ctx, e.conv.LoginID, e.conv.PortalID) // a second text: the wait began with the first
		clock.advance(15 * time.Minute)
		conv := e.stored(t, ctx)
		r.StaffReplied(ctx, conv, "@nurse:clinic.example")
		assert.Equal(t, []time.Duration{25 * time.Minute}, waits)
		assert.True(t, conv.WaitingSince.IsZero(), "the caller's copy follows")
		assert.True(t, e.stored(t, ctx).WaitingSince.IsZero())

		r.StaffReplied(ctx, conv, "@dr.lee:clinic.example")
		assert.Len(t, waits, 1, "only the first reply counts")
		answered, err := e.db.ResponseTimes().List(ctx, "", clock.now().Add(-time.Hour), clock.now().Add(time.Millisecond))
		require.NoError(t, err)
		require.Len(t, answered, 1)
		assert.Equal(t, "@nurse:clinic.example", answered[0].AnsweredBy)
	})
}

func TestAPatientTextReopensAndMentionsTheOwnerOncePerInterval(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		clock := &followUpClock{}
		clock.ms.Store(time.Now().UnixMilli())
		var waits []time.Duration
		r := newResponses(e, clock, &waits)

		r.PatientText(ctx, e.conv, "hello")
		assert.Empty(t, mentions(e.rooms.calls), "nobody owns it")

		require.NoError(t, e.svc.Assign(ctx, e.conv, nurse, "@nurse:clinic.example"))
		require.NoError(t, e.svc.Close(ctx, e.conv, nurse, "Nurse Kim", clock.now()))
		e.rooms.notices = nil
		r.PatientText(ctx, e.conv, "one more question")
		assert.True(t, e.stored(t, ctx).ClosedAt.IsZero(), "reopened")
		assert.Equal(t, []string{conversation.ReopenedByTextNotice}, e.rooms.notices)
		clock.advance(time.Second)
		r.PatientText(ctx, e.conv, "and another")
		assert.Equal(t, []string{"mention @nurse:clinic.example"}, mentions(e.rooms.calls), "a burst mentions once")
		clock.advance(workflow.MentionInterval)
		r.PatientText(ctx, e.conv, "are you there?")
		assert.Len(t, mentions(e.rooms.calls), 2)
	})
}

func mentions(calls []string) (out []string) {
	for _, c := range calls {
		if strings.HasPrefix(c, "mention ") {
			out = append(out, c)
		}
	}
	return out
}

func TestTheInboxListsOpenConversationsWithOwnerWaitAndRoom(t *testing.T) {
	eachDB(t, func(t *testing.T, ctx context.Context, e *env) {
		now := time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC)
		text, rich, total, err := e.svc.Inbox(ctx, []string{"+15550002222"}, now)
		require.NoError(t, err)
		assert.Zero(t, total, "another clinic number's inbox")
		assert.Empty(t, text+rich)

		require.NoError(t, e.db.Conversation.MarkWaiting(ctx, e.conv.LoginID, e.conv.PortalID, now.Add(-25*time.Minute)))
		require.NoError(t, e.svc.Assign(ctx, e.conv, nurse, "@nurse:clinic.example"))
		other, err := e.db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: "15550001111", PortalID: "15559876543",
			ClinicPhone: "+15550001111", PatientPhone: "+15559876543"})
		require.NoError(t, err)
		require.NoError(t, e.db.Conversation.SetPatientName(ctx, other.PatientPhone, "Maria <Lopez>"))

		text, rich, total, err = e.svc.Inbox(ctx, nil, now)
		require.NoError(t, err)
		assert.Equal(t, 2, total)
		assert.Equal(t, "Open conversations (2):\n"+
			"1. Maria <Lopez> · unassigned · not waiting · https://matrix.to/#/!15559876543:clinic.example\n"+
			"2. +1 555-123-4567 · assigned to Nurse Kim · waiting 25m · https://matrix.to/#/!15551234567:clinic.example", text)
		assert.Contains(t, rich, "<li>Maria &lt;Lopez&gt; · unassigned · not waiting · <a href=\"https://matrix.to/#/!15559876543:clinic.example\">open</a></li>")

		require.NoError(t, e.svc.Close(ctx, e.conv, nurse, "Nurse Kim", now))
		require.NoError(t, e.svc.Close(ctx, other, nurse, "Nurse Kim", now))
		_, _, total, err = e.svc.Inbox(ctx, nil, now)
		require.NoError(t, err)
		assert.Zero(t, total, "closed conversations leave the inbox")
	})
}
