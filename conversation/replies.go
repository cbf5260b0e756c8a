package conversation

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/workflow"
)

// The automatic answers to a patient's text: the emergency reply and the after-hours
// reply. Both are fixed texts without PHI, so they go by SMS even in secure mode (the
// patient may not have the secure chat open), and never to a number that opted out. The
// room hears of each in a notice that mentions the on-call staff.

// OnCall is told what on-call staff must see: the bridge posts it as a notice that
// mentions them. A Rooms that also implements OnCall is told; without one, a plain notice.
type OnCall interface {
	NoticeOnCall(ctx context.Context, conv *database.Conversation, text string)
}

// Urgency is told that a conversation became urgent or routine, beyond its room's state:
// its place in the team spaces. A Rooms that also implements Urgency is told.
type Urgency interface {
	UrgencyChanged(ctx context.Context, conv *database.Conversation)
}

// AutoReplies answers patients' texts by the clinic's rules, over an injected clock.
type AutoReplies struct {
	S   *Service
	Now func() time.Time
	// emergency holds when each conversation last got the emergency reply (per process).
	emergency workflow.EmergencyReplies
}

// MarkUrgent marks the conversation urgent or routine, audited: the room's state and
// topic, its name's 🚨 prefix and its place in the team spaces follow. It sends no notice
// (the caller says why it happened).
func (s *Service) MarkUrgent(ctx context.Context, conv *database.Conversation, actor database.AuditActor, urgent bool) error {
	event := database.EventMarkedRoutine
	if urgent {
		event = database.EventMarkedUrgent
	}
	err := s.DB.Audited(ctx, audit(conv, actor, event, ""), func(ctx context.Context) error {
		return s.DB.Conversation.SetUrgent(ctx, conv.LoginID, conv.PortalID, urgent)
	})
	if err != nil {
		return err
	}
	conv.Urgent = urgent
	s.Rooms.ShowState(ctx, conv)
	if u, ok := s.Rooms.(Urgency); ok {
		u.UrgencyChanged(ctx, conv)
	}
	return nil
}

// noticeOnCall posts a notice the on-call staff are mentioned in.
func (s *Service) noticeOnCall(ctx context.Context, conv *database.Conversation, text string) {
	if o, ok := s.Rooms.(OnCall); ok {
		o.NoticeOnCall(ctx, conv, text)
		return
	}
	s.Rooms.Notice(ctx, conv, text)
}

// Emergency answers a text containing one of the clinic's emergency phrases with the
// emergency reply (at most once per interval per conversation) and marks the
// conversation urgent. It reports whether the text matched.
func (r *AutoReplies) Emergency(ctx context.Context, conv *database.Conversation, body string) bool {
	cfg := r.S.Config
	phrase := workflow.MatchEmergency(cfg.Emergency.Phrases, body)
	if phrase == "" {
		return false
	}
	log := zerolog.Ctx(ctx).With().Str("action", "emergency reply").Str("portal_id", conv.PortalID).Logger()
	ctx = log.WithContext(ctx)
	if err := r.S.MarkUrgent(ctx, conv, database.SystemActor, true); err != nil {
		log.Err(err).Msg("Failed to mark the conversation urgent")
	}
	claimed, release := r.emergency.Claim(conv.LoginID+"/"+conv.PortalID, r.Now())
	if !claimed {
		log.Debug().Msg("Emergency reply already sent within the interval")
		return true
	}
	var outcome string
	var result database.AuditOutcome
	switch err := r.S.Text(ctx, conv, outbox.KindAutoReply, cfg.Render(cfg.Emergency.Reply), ""); {
	case err == nil:
		outcome, result = "The emergency reply (call 911) was texted to the patient.", database.OutcomeOK
	case conv.OptedOut:
		outcome, result = "The patient has opted out (STOP): no emergency reply was texted. Call them if you can.", database.OutcomeOptedOut
	default:
		release()
		log.Err(err).Msg("Failed to text the emergency reply")
		outcome, result = "The emergency reply could not be texted ("+SendErrorWords(err)+"). Call the patient if you can.", database.OutcomeFailed
	}
	entry := audit(conv, database.SystemActor, database.EventEmergencyReplySent, "")
	entry.Outcome = result
	if err := r.S.DB.Audited(ctx, entry, nil); err != nil {
		log.Err(err).Msg("Failed to audit the emergency reply")
	}
	r.S.noticeOnCall(ctx, conv, fmt.Sprintf("🚨 Possible emergency: the patient's message contains “%s”. "+
		"This conversation is marked urgent. %s", phrase, outcome))
	return true
}

// AfterHours texts the after-hours reply when the patient writes while the clinic is
// closed, once per closed period.
func (r *AutoReplies) AfterHours(ctx context.Context, conv *database.Conversation) {
	cfg := r.S.Config
	log := zerolog.Ctx(ctx).With().Str("action", "after-hours reply").Str("portal_id", conv.PortalID).Logger()
	ctx = log.WithContext(ctx)
	hours, err := workflow.ParseBusinessHours(&cfg.BusinessHours)
	if err != nil {
		log.Err(err).Msg("Failed to read business hours")
		return
	}
	now := r.Now()
	reply := hours.AfterHours(now, cfg.SecureChat.Language, cfg.BusinessHours.AfterHoursReply)
	if !reply.Closed {
		return
	}
	claimed, err := r.S.DB.Conversation.ClaimAfterHours(ctx, conv.LoginID, conv.PortalID, now, reply.ClosedSince)
	if err != nil {
		log.Err(err).Msg("Failed to claim the after-hours reply")
		return
	} else if !claimed {
		log.Debug().Msg("After-hours reply already sent in this closed period")
		return
	}
	text := cfg.Render(reply.Template)
	if reply.OpensAgain != "" {
		text += " " + reply.OpensAgain
	}
	var outcome string
	var result database.AuditOutcome
	switch err = r.S.Text(ctx, conv, outbox.KindAutoReply, text, ""); {
	case err == nil:
		outcome, result = "The after-hours reply was texted to the patient.", database.OutcomeOK
	case conv.OptedOut:
		outcome, result = "The patient has opted out (STOP): no after-hours reply was texted.", database.OutcomeOptedOut
	default:
		log.Err(err).Msg("Failed to text the after-hours reply")
		if err = r.S.DB.Conversation.ReleaseAfterHours(ctx, conv.LoginID, conv.PortalID, now, conv.AfterHoursAt); err != nil {
			log.Err(err).Msg("Failed to release the after-hours claim")
		}
		outcome, result = "The after-hours reply could not be texted; the patient's next message tries again.", database.OutcomeFailed
	}
	entry := audit(conv, database.SystemActor, database.EventAfterHoursReplySent, "")
	entry.Outcome = result
	if err = r.S.DB.Audited(ctx, entry, nil); err != nil {
		log.Err(err).Msg("Failed to audit the after-hours reply")
	}
	when := ""
	if reply.ForStaff != "" {
		when = " (" + reply.ForStaff + ")"
	}
	r.S.noticeOnCall(ctx, conv, "🌙 After hours: the patient wrote while the clinic is closed"+when+". "+outcome)
}
