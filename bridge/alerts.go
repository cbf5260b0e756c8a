package bridge

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/loop"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
)

const (
	// alertPoll is how often the alert loop looks at least (the workflow clock may move).
	alertPoll    = 5 * time.Second
	alertMinWait = 100 * time.Millisecond
	alertBatch   = 50
)

// startAlerts starts the loop that texts held-back alerts and reminders when they are due.
func (c *Connector) startAlerts(ctx context.Context) {
	log := c.Bridge.Log.With().Str("component", "secure alerts").Logger()
	c.alerts = loop.Start(log.WithContext(ctx), c.now, alertPoll, alertMinWait, c.alertPass)
}

// alertPass texts the alerts and reminders due now and says when the next one is due.
func (c *Connector) alertPass(ctx context.Context) (time.Time, bool) {
	log := zerolog.Ctx(ctx)
	policy := c.alertPolicy()
	now := c.now()
	remindBefore := time.UnixMilli(0) // no reminders
	if policy.ReminderAfter > 0 {
		remindBefore = now.Add(-policy.ReminderAfter)
	}
	due, err := c.DB.Conversation.AlertsDue(ctx, now, remindBefore, alertBatch)
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
		c.alertDue(zerolog.Ctx(ctx).With().Str("portal_id", conv.PortalID).Logger().WithContext(ctx), conv, policy, now)
	}
	if len(due) == alertBatch {
		return now, true
	}
	nextDue, lastUnreminded, err := c.DB.Conversation.NextAlert(ctx)
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

// alertDue texts one conversation's due alert or reminder, or forgets it when the patient
// has read everything (or opted out) meanwhile.
func (c *Connector) alertDue(ctx context.Context, conv *database.Conversation, policy securechat.AlertPolicy, now time.Time) {
	log := zerolog.Ctx(ctx)
	unread, err := c.DB.Secure.UnreadStaffCount(ctx, conv.LoginID, conv.PortalID)
	if err != nil {
		log.Err(err).Msg("Failed to count unread secure messages")
		return
	}
	action := policy.Due(conv, unread > 0 && !conv.OptedOut, now)
	portal, err := c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(conv.PortalID),
		Receiver: networkid.UserLoginID(conv.LoginID)})
	if err != nil || portal == nil || portal.MXID == "" {
		log.Err(err).Msg("No room for a due secure alert; dropping it")
		action = securechat.AlertNone
	}
	switch action {
	case securechat.AlertNow:
		log.Debug().Msg("Texting the alert held back by the quiet period")
		c.sendAlert(ctx, portal, conv)
	case securechat.AlertReminder:
		c.sendUnreadReminder(ctx, conv)
	default:
		// Read (or opted out, or no room) meanwhile: nothing is due for this alert any more.
		if err = c.DB.Conversation.ClearAlert(ctx, conv.LoginID, conv.PortalID); err != nil {
			log.Err(err).Msg("Failed to drop a held-back alert")
		}
		if _, err = c.DB.Conversation.ClaimReminder(ctx, conv.LoginID, conv.PortalID, now); err != nil {
			log.Err(err).Msg("Failed to drop a reminder")
		}
	}
}

// sendUnreadReminder texts the one reminder for secure messages still unread.
func (c *Connector) sendUnreadReminder(ctx context.Context, conv *database.Conversation) {
	log := zerolog.Ctx(ctx)
	if claimed, err := c.DB.Conversation.ClaimReminder(ctx, conv.LoginID, conv.PortalID, c.now()); err != nil || !claimed {
		if err != nil {
			log.Err(err).Msg("Failed to claim the unread reminder")
		}
		return
	}
	if err := c.Conversations.TextLink(ctx, conv, outbox.KindReminder, "", database.SystemActor, securechat.UnreadReminderText); err != nil {
		log.Err(err).Msg("Failed to text the unread reminder")
		return
	}
	if err := c.audited(ctx, convAudit(conv, database.SystemActor, database.EventReminderSent, database.OutcomeOK, ""), nil); err != nil {
		log.Err(err).Msg("Failed to audit an unread reminder")
	}
	log.Info().Msg("Reminded the patient of unread secure messages")
}
