package conversation

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/loop"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
)

const (
	// alertPoll is how often the alert loop looks at least (the clock may move).
	alertPoll    = 5 * time.Second
	alertMinWait = 100 * time.Millisecond
	alertBatch   = 50
)

// OptedOutAlertNotice is what the room reads when a secure message is kept for a patient
// who opted out: no alert is texted.
const OptedOutAlertNotice = "The patient has opted out (STOP): no alert was texted. They will see the message when they open an earlier link."

// Alerter tells patients that secure messages wait for them: an alert with a fresh link
// for the first unread message, one held back by the quiet period texted when it ends,
// and one reminder for messages still unread after secure_chat.reminder_after. It is the
// Service's Alerts.
type Alerter struct {
	S   *Service
	Now func() time.Time

	ctx  context.Context
	loop *loop.Loop
}

var _ Alerts = (*Alerter)(nil)

// policy is the clinic's configuration of when patients are alerted.
func (a *Alerter) policy() securechat.AlertPolicy {
	return securechat.AlertPolicy{Quiet: a.S.Config.SecureChat.AlertQuietPeriod, ReminderAfter: a.S.Config.SecureChat.ReminderAfter}
}

// Start runs the loop that texts held-back alerts and reminders when they are due; Stop
// ends it.
func (a *Alerter) Start(ctx context.Context) {
	a.ctx = ctx
	a.loop = loop.Start(ctx, a.Now, alertPoll, alertMinWait, a.pass)
}

// Wake makes the alert loop look for due alerts now (after the clock moved).
func (a *Alerter) Wake() {
	if a.loop != nil {
		a.loop.Wake()
	}
}

// Stop ends the alert loop (nothing when it was not started).
func (a *Alerter) Stop() {
	if a.loop != nil {
		a.loop.Stop()
	}
}

// StaffMessageKept alerts the patient in the background (at once, or when the quiet
// period ends): the staff message's handling does not wait for the text.
func (a *Alerter) StaffMessageKept(ctx context.Context, conv *database.Conversation) {
	bg := a.ctx
	if bg == nil {
		bg = context.WithoutCancel(ctx)
	}
	log := zerolog.Ctx(ctx).With().Str("action", "secure alert").Str("portal_id", conv.PortalID).Logger()
	go a.staffMessageKept(log.WithContext(bg), conv.LoginID, conv.PortalID)
}

func (a *Alerter) staffMessageKept(ctx context.Context, loginID, portalID string) {
	log := zerolog.Ctx(ctx)
	conv, err := a.S.DB.Conversation.Get(ctx, loginID, portalID)
	if err != nil || conv == nil {
		log.Err(err).Msg("Failed to read conversation for alert")
		return
	}
	if conv.OptedOut {
		a.S.Rooms.Notice(ctx, conv, OptedOutAlertNotice)
		return
	}
	action, due := a.policy().OnStaffMessage(conv, a.Now())
	if action == securechat.AlertLater {
		if err = a.S.DB.Conversation.HoldAlert(ctx, loginID, portalID, due); err != nil {
			log.Err(err).Msg("Failed to keep an alert for the end of the quiet period")
		}
		log.Debug().Time("due", due).Msg("Alert held back until the quiet period ends")
		if a.loop != nil {
			a.loop.Wake()
		}
		return
	}
	a.sendAlert(ctx, conv)
}

// sendAlert texts the "new secure message" alert with a fresh link, in the patient's
// language, unless another caller texted one within the quiet period. A refusal or
// failure is a notice in the room.
func (a *Alerter) sendAlert(ctx context.Context, conv *database.Conversation) {
	log := zerolog.Ctx(ctx)
	claimed, err := a.S.DB.Conversation.ClaimAlert(ctx, conv.LoginID, conv.PortalID, a.Now(), a.S.Config.SecureChat.AlertQuietPeriod)
	if err != nil {
		log.Err(err).Msg("Failed to claim alert")
		return
	} else if !claimed {
		log.Debug().Msg("Alert already sent within the quiet period")
		return
	}
	if err = a.S.TextLink(ctx, conv, outbox.KindAlert, "", database.SystemActor, securechat.AlertText); err != nil {
		log.Err(err).Msg("Failed to text secure message alert")
		a.S.Rooms.Notice(ctx, conv, NotSentWords(outbox.KindAlert, err))
		return
	}
	if err = a.S.DB.Audited(ctx, audit(conv, database.SystemActor, database.EventAlertSent, ""), nil); err != nil {
		log.Err(err).Msg("Failed to audit a secure message alert")
	}
}

// pass texts the alerts and reminders due now and says when the next one is due.
func (a *Alerter) pass(ctx context.Context) (time.Time, bool) {
	log := zerolog.Ctx(ctx)
	policy := a.policy()
	now := a.Now()
	remindBefore := time.UnixMilli(0) // no reminders
	if policy.ReminderAfter > 0 {
		remindBefore = now.Add(-policy.ReminderAfter)
	}
	due, err := a.S.DB.Conversation.AlertsDue(ctx, now, remindBefore, alertBatch)
	if err != nil {
		if ctx.Err() == nil {
			log.Err(err).Msg("Failed to read due secure alerts")
		}
		return time.Time{}, false
	}
	for _, conv := range due {
		if ctx.Err() != nil {
			break
		}
		a.due(log.With().Str("portal_id", conv.PortalID).Logger().WithContext(ctx), conv, policy, now)
	}
	if len(due) == alertBatch {
		return now, true
	}
	nextDue, lastUnreminded, err := a.S.DB.Conversation.NextAlert(ctx)
	if err != nil {
		return time.Time{}, false
	}
	next, ok := nextDue, !nextDue.IsZero()
	if policy.ReminderAfter > 0 && !lastUnreminded.IsZero() {
		if remind := lastUnreminded.Add(policy.ReminderAfter); !ok || remind.Before(next) {
			next, ok = remind, true
		}
	}
	return next, ok
}

// due texts one conversation's due alert or reminder, or forgets it when the patient has
// read everything (or opted out) meanwhile.
func (a *Alerter) due(ctx context.Context, conv *database.Conversation, policy securechat.AlertPolicy, now time.Time) {
	log := zerolog.Ctx(ctx)
	unread, err := a.S.DB.Secure.UnreadStaffCount(ctx, conv.LoginID, conv.PortalID)
	if err != nil {
		log.Err(err).Msg("Failed to count unread secure messages")
		return
	}
	switch policy.Due(conv, unread > 0 && !conv.OptedOut, now) {
	case securechat.AlertNow:
		log.Debug().Msg("Texting the alert held back by the quiet period")
		a.sendAlert(ctx, conv)
	case securechat.AlertReminder:
		a.sendReminder(ctx, conv)
	default:
		// Read (or opted out) meanwhile: nothing is due for this alert any more.
		if err = a.S.DB.Conversation.ClearAlert(ctx, conv.LoginID, conv.PortalID); err != nil {
			log.Err(err).Msg("Failed to drop a held-back alert")
		}
		if _, err = a.S.DB.Conversation.ClaimReminder(ctx, conv.LoginID, conv.PortalID, now); err != nil {
			log.Err(err).Msg("Failed to drop a reminder")
		}
	}
}

// sendReminder texts the one reminder for secure messages still unread.
func (a *Alerter) sendReminder(ctx context.Context, conv *database.Conversation) {
	log := zerolog.Ctx(ctx)
	if claimed, err := a.S.DB.Conversation.ClaimReminder(ctx, conv.LoginID, conv.PortalID, a.Now()); err != nil || !claimed {
		if err != nil {
			log.Err(err).Msg("Failed to claim the unread reminder")
		}
		return
	}
	if err := a.S.TextLink(ctx, conv, outbox.KindReminder, "", database.SystemActor, securechat.UnreadReminderText); err != nil {
		log.Err(err).Msg("Failed to text the unread reminder")
		a.S.Rooms.Notice(ctx, conv, NotSentWords(outbox.KindReminder, err))
		return
	}
	if err := a.S.DB.Audited(ctx, audit(conv, database.SystemActor, database.EventReminderSent, ""), nil); err != nil {
		log.Err(err).Msg("Failed to audit an unread reminder")
	}
	log.Info().Msg("Reminded the patient of unread secure messages")
}
