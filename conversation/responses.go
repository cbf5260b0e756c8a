package conversation

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/workflow"
)

// What a patient's text sets going, and what a staff reply ends: the wait for a reply and
// its response time, reopening a closed conversation, the automatic replies, and mentioning
// the conversation's owner.

// Mentioner is told to mention a conversation's owner on a new patient message. A Rooms that
// also implements Mentioner is told; the bridge's does.
type Mentioner interface {
	MentionAssignee(ctx context.Context, conv *database.Conversation)
}

// Responses runs the clinic's rules on patients' texts and staff replies, over an injected
// clock.
type Responses struct {
	S       *Service
	Replies *AutoReplies
	Now     func() time.Time
	// FirstReply observes each time from a patient's text to the first staff reply (nil: none).
	FirstReply func(wait time.Duration)
	// mentions holds when each conversation's owner was last mentioned (per process).
	mentions workflow.Mentions
}

// Waiting records that the patient waits for a reply (unless an earlier message already
// waits). It is called before the patient's text is put into the room, so that a staff reply
// that follows at once always finds the wait to end.
func (r *Responses) Waiting(ctx context.Context, loginID, portalID string) {
	if err := r.S.DB.Conversation.MarkWaiting(ctx, loginID, portalID, r.Now()); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to record that the patient waits for a reply")
	}
}

// PatientText runs the rules for a patient's text (SMS or secure chat) that has just been
// put into the room: a closed conversation reopens, the emergency and after-hours replies
// answer, and the owner is mentioned (at most once per workflow.MentionInterval). Keywords
// (STOP, HELP…) do not come here.
func (r *Responses) PatientText(ctx context.Context, conv *database.Conversation, body string) {
	if !conv.ClosedAt.IsZero() {
		err := r.S.Reopen(ctx, conv, database.PatientActor, "")
		if err != nil && !errors.Is(err, ErrNotClosed) {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to reopen the conversation")
		}
	}
	r.Replies.Emergency(ctx, conv, body)
	r.Replies.AfterHours(ctx, conv)
	if conv.Assignee == "" || !r.mentions.Due(conv.LoginID+"/"+conv.PortalID, r.Now()) {
		return
	}
	if m, ok := r.S.Rooms.(Mentioner); ok {
		m.MentionAssignee(ctx, conv)
	}
}

// StaffReplied ends the patient's wait with the first staff reply (sender, a Matrix ID)
// and records its time.
func (r *Responses) StaffReplied(ctx context.Context, conv *database.Conversation, sender string) {
	if conv.WaitingSince.IsZero() {
		return
	}
	now := r.Now()
	recorded, err := r.S.DB.ResponseTimes().EndWait(ctx, &database.ResponseTime{LoginID: conv.LoginID, PortalID: conv.PortalID,
		WaitedFrom: conv.WaitingSince, AnsweredAt: now, AnsweredBy: sender})
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to record the response time")
		return
	}
	if recorded {
		if r.FirstReply != nil {
			r.FirstReply(now.Sub(conv.WaitingSince))
		}
		conv.WaitingSince = time.Time{}
	}
}
