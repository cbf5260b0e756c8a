package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/loop"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// Scheduled follow-ups (`!sms later`): staff write a message now for the patient to get
// later. It is sealed at rest until due, then sent by the conversation's mode at that time,
// at most once: a message is claimed (pending → sending) before it goes out, and a claim
// whose outcome was never recorded (a crash mid-send) is reported to staff, not resent.

const (
	// laterPollInterval is how often the scheduler looks for due messages; scheduling one
	// also wakes it at once.
	laterPollInterval = 2 * time.Second
	// laterMinWait keeps the scheduler from spinning on a due message it has to skip.
	laterMinWait = 250 * time.Millisecond
	// laterLoginGrace is how long after start-up a due message waits for its clinic
	// number to be loaded before it fails as not linked.
	laterLoginGrace = time.Minute
	// laterSendTimeout bounds one send, which a shutdown lets finish.
	laterSendTimeout = 2 * time.Minute
	// laterBatch is how many due messages are read at a time.
	laterBatch = 20
)

// laterPart is the additional data a scheduled text is sealed with: it opens only in its
// conversation, and never as a secure chat message.
const laterPart = securechat.ScheduledPart

func fnLater(ce *commands.Event, c *Connector, conv *database.Conversation) {
	sub, rest := workflow.CutWord(ce.RawArgs)
	switch strings.ToLower(sub) {
	case "":
		listLater(ce, c, conv)
	case "cancel":
		cancelLater(ce, c, conv, rest)
	case "list":
		listLater(ce, c, conv)
	default:
		scheduleLater(ce, c, conv)
	}
}

func scheduleLater(ce *commands.Event, c *Connector, conv *database.Conversation) {
	loc := workflow.ClinicLocation(&c.Config.BusinessHours)
	now := c.now()
	sendAt, text, err := workflow.ParseLater(ce.RawArgs, now, loc)
	if err != nil {
		if errors.Is(err, workflow.ErrLaterUsage) {
			ce.Reply(workflow.LaterUsage)
		} else {
			ce.Reply("Not scheduled: %s.", withPrefix(ce, err.Error()))
		}
		return
	}
	if conv.Mode == database.ModeSMS {
		// Checked now while staff can shorten it; checked again when it is sent.
		signed := c.staffName(ce.Ctx, ce.Portal, ce.User.MXID) + ": " + text
		if segments, enc := sms.CountSegments(signed); segments > c.Config.MaxSegments {
			ce.Reply("Not scheduled: this text would be %d SMS segments (%s), more than the limit of %d; shorten it or split it.",
				segments, enc, c.Config.MaxSegments)
			return
		}
	}
	keyID, sealed, err := c.Keys.Seal([]byte(text), securechat.MessageAdditional(conv.LoginID, conv.PortalID, laterPart))
	if err != nil {
		ce.Log.Err(err).Msg("Failed to seal a scheduled message")
		ce.Reply("Failed to schedule the message; try again.")
		return
	}
	m := &database.ScheduledMessage{LoginID: conv.LoginID, PortalID: conv.PortalID, CreatedBy: ce.User.MXID.String(),
		CreatedAt: now, SendAt: sendAt, KeyID: keyID, Body: sealed}
	entry := convAudit(conv, database.StaffActor(ce.User.MXID), database.EventFollowUpScheduled, database.OutcomeOK, "")
	err = c.audited(ce.Ctx, entry, func(ctx context.Context) error {
		if err := c.DB.Scheduled().Insert(ctx, m); err != nil {
			return err
		}
		entry.Detail = fmt.Sprintf("#%d for %s", m.ID, sendAt.UTC().Format(time.RFC3339))
		return nil
	})
	if err != nil {
		ce.Log.Err(err).Msg("Failed to store a scheduled message")
		ce.Reply("Failed to schedule the message; try again.")
		return
	}
	if c.later != nil {
		c.later.Wake()
	}
	ce.Reply("%s", withPrefix(ce, workflow.LaterScheduled(m.ID, sendAt, now, loc)))
}

func listLater(ce *commands.Event, c *Connector, conv *database.Conversation) {
	pending, err := c.DB.Scheduled().ListPending(ce.Ctx, conv.LoginID, conv.PortalID)
	if err != nil {
		ce.Log.Err(err).Msg("Failed to list scheduled messages")
		ce.Reply("Failed to list the scheduled messages; try again.")
		return
	}
	if len(pending) == 0 {
		ce.Reply("No message is scheduled in this conversation. " + workflow.LaterUsage)
		return
	}
	entries := make([]workflow.LaterEntry, len(pending))
	for i, m := range pending {
		entries[i].Message = m
		if text, err := c.openLater(m); err == nil {
			entries[i].Text = text
		} else {
			entries[i].Unreadable = err.Error()
		}
	}
	ce.Reply("%s", withPrefix(ce, workflow.LaterList(entries, workflow.ClinicLocation(&c.Config.BusinessHours))))
}

func cancelLater(ce *commands.Event, c *Connector, conv *database.Conversation, arg string) {
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(arg), "#"), 10, 64)
	if err != nil || n <= 0 {
		ce.Reply("Usage: `$cmdprefix later cancel <number>`; `$cmdprefix later` lists the numbers.")
		return
	}
	var cancelled bool
	err = c.audited(ce.Ctx, convAudit(conv, database.StaffActor(ce.User.MXID), database.EventFollowUpCancelled, database.OutcomeOK, "#"+strconv.FormatInt(n, 10)),
		func(ctx context.Context) error {
			var err error
			if cancelled, err = c.DB.Scheduled().Cancel(ctx, n, conv.LoginID, conv.PortalID); err == nil && !cancelled {
				return errUnchanged
			}
			return err
		})
	if errors.Is(err, errUnchanged) {
		m, getErr := c.DB.Scheduled().Get(ce.Ctx, n)
		switch {
		case getErr != nil:
			ce.Log.Err(getErr).Msg("Failed to read a scheduled message")
			ce.Reply("Failed to cancel; try again.")
		case m == nil || m.LoginID != conv.LoginID || m.PortalID != conv.PortalID:
			ce.Reply("There is no scheduled message %d in this conversation; `$cmdprefix later` lists them.", n)
		default:
			ce.Reply("Scheduled message %d cannot be cancelled: it is %s.", n, workflow.DescribeScheduledState(m.State))
		}
		return
	} else if err != nil {
		ce.Log.Err(err).Msg("Failed to cancel a scheduled message")
		ce.Reply("Failed to cancel; try again.")
		return
	}
	ce.Reply("Scheduled message %d is cancelled; it will not be sent.", n)
}

// withPrefix puts the command prefix into a reply passed as an argument (ce.Reply only
// replaces it in the format).
func withPrefix(ce *commands.Event, text string) string {
	return strings.ReplaceAll(text, "$cmdprefix", ce.Bridge.Config.CommandPrefix)
}

// errUnchanged rolls back the audit row of a change that did not happen (the row was not
// in the state the change expects).
var errUnchanged = errors.New("scheduled message not in the expected state")

// openLater opens a scheduled message's sealed text.
func (c *Connector) openLater(m *database.ScheduledMessage) (string, error) {
	plain, err := c.Keys.Open(m.KeyID, m.Body, securechat.MessageAdditional(m.LoginID, m.PortalID, laterPart))
	if errors.Is(err, securechat.ErrUnknownKey) {
		return "", fmt.Errorf("it was sealed with the key %q, which this bridge no longer has", m.KeyID)
	} else if err != nil {
		return "", errors.New("its sealed text is damaged")
	}
	return string(plain), nil
}

// staffName is how the patient sees a staff member: their display name in the room, or
// their user name as relayed messages show it (memberName, for staff, falls back to the
// full Matrix ID, which patients need not see).
func (c *Connector) staffName(ctx context.Context, portal *bridgev2.Portal, user id.UserID) string {
	if portal != nil && portal.MXID != "" {
		if member, err := c.Bridge.Matrix.GetMemberInfo(ctx, portal.MXID, user); err == nil && member != nil && member.Displayname != "" {
			return member.Displayname
		}
	}
	return user.Localpart()
}

// ---- the scheduler ---------------------------------------------------------------

// startLater starts the scheduler, which sends scheduled messages when they are due by
// the workflow clock; stopLater lets a send in progress finish (so no claim is left
// without its outcome) and waits for it to end.
func (c *Connector) startLater(ctx context.Context) {
	log := c.Bridge.Log.With().Str("component", "scheduled messages").Logger()
	ctx = log.WithContext(ctx)
	c.failInterrupted(ctx)
	c.later = loop.Start(ctx, c.now, laterPollInterval, laterMinWait, func(ctx context.Context) (time.Time, bool) {
		c.sendDueLater(ctx)
		next, ok, err := c.DB.Scheduled().NextDue(ctx)
		if err != nil && ctx.Err() == nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to read the next scheduled message")
		}
		return next, ok && err == nil
	})
}

func (c *Connector) stopLater() { c.later.Stop() }

// failInterrupted reports the messages that were being sent when the bridge stopped
// without recording the outcome. They are not sent again: Twilio may or may not have
// taken the text, and a clinical text twice (a second "take 2 tablets") is worse than a
// missing one that staff are told about and can resend.
func (c *Connector) failInterrupted(ctx context.Context) {
	log := zerolog.Ctx(ctx)
	sending, err := c.DB.Scheduled().ListSending(ctx)
	if err != nil {
		log.Err(err).Msg("Failed to look for interrupted scheduled messages")
		return
	}
	for _, m := range sending {
		text, openErr := c.openLater(m)
		const reason = "interrupted: the bridge stopped while sending it"
		conv := &database.Conversation{LoginID: m.LoginID, PortalID: m.PortalID}
		var finished bool
		err = c.audited(ctx, convAudit(conv, m.Actor(), database.EventFollowUpSent, database.OutcomeUnknown, fmt.Sprintf("#%d %s", m.ID, reason)),
			func(ctx context.Context) error {
				var err error
				if finished, err = c.DB.Scheduled().Finish(ctx, m.ID, database.ScheduledFailed, c.now(), reason); err == nil && !finished {
					return errUnchanged
				}
				return err
			})
		if errors.Is(err, errUnchanged) {
			continue
		} else if err != nil {
			log.Err(err).Int64("scheduled_id", m.ID).Msg("Failed to record an interrupted scheduled message")
			continue
		}
		log.Warn().Int64("scheduled_id", m.ID).Str("portal_id", m.PortalID).
			Msg("A scheduled message was interrupted while being sent; staff are asked to check it")
		notice := fmt.Sprintf("⚠️ Scheduled message %d may not have reached the patient: the bridge stopped while sending it. "+
			"It is not sent again automatically, so that the patient never gets it twice: check with the patient and resend it if needed.", m.ID)
		if openErr == nil {
			notice += " The text was: " + text
		}
		c.laterNotice(ctx, m, notice)
	}
}

// sendDueLater sends every message due by the workflow clock.
func (c *Connector) sendDueLater(ctx context.Context) {
	for ctx.Err() == nil {
		due, err := c.DB.Scheduled().GetDue(ctx, c.now(), laterBatch)
		if err != nil {
			if ctx.Err() == nil {
				zerolog.Ctx(ctx).Err(err).Msg("Failed to read due scheduled messages")
			}
			return
		}
		handled := 0
		for _, m := range due {
			if ctx.Err() != nil {
				return
			}
			// A send in progress is finished even when the bridge is stopping.
			sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), laterSendTimeout)
			if c.sendLater(sendCtx, m) {
				handled++
			}
			cancel()
		}
		if handled == 0 || len(due) < laterBatch {
			return
		}
	}
}

// sendLater sends one due message; false when it was left for later (its clinic number
// is not loaded yet) or another sender claimed it.
func (c *Connector) sendLater(ctx context.Context, m *database.ScheduledMessage) bool {
	log := zerolog.Ctx(ctx).With().Int64("scheduled_id", m.ID).Str("login_id", m.LoginID).Str("portal_id", m.PortalID).Logger()
	ctx = log.WithContext(ctx)
	login := c.Bridge.GetCachedUserLoginByID(networkid.UserLoginID(m.LoginID))
	if login == nil && time.Since(c.startedAt) < laterLoginGrace {
		log.Debug().Msg("Scheduled message waits for its clinic number to be loaded")
		return false
	}
	claimed, err := c.DB.Scheduled().Claim(ctx, m.ID)
	if err != nil {
		log.Err(err).Msg("Failed to claim a scheduled message")
		return false
	} else if !claimed {
		return false
	}
	text, err := c.openLater(m)
	if err != nil {
		c.finishLater(ctx, m, "", err.Error(), "")
		return true
	}
	if login == nil {
		c.finishLater(ctx, m, "", "the clinic number is no longer linked", text)
		return true
	}
	portal, err := c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(m.PortalID), Receiver: login.ID})
	if err != nil {
		log.Err(err).Msg("Failed to get the portal of a scheduled message")
	}
	conv, err := c.DB.Conversation.Get(ctx, m.LoginID, m.PortalID)
	if err != nil || conv == nil || portal == nil {
		log.Err(err).Msg("Failed to read the conversation of a scheduled message")
		c.finishLater(ctx, m, "", "its conversation could not be read", text)
		return true
	}
	name := c.staffName(ctx, portal, id.UserID(m.CreatedBy))
	sent, err := c.Conversations.Send(ctx, conv, conversation.Outgoing{Actor: m.Actor(), Sender: name, Text: text,
		Body: name + ": " + text, Kind: outbox.KindFollowUp})
	switch {
	case err != nil && conv.Mode == database.ModeSecure:
		log.Err(err).Msg("Failed to store a scheduled message for the secure chat")
		c.finishLater(ctx, m, "", "it could not be stored for the secure chat", text)
		return true
	case err != nil:
		log.Err(err).Msg("Failed to text a scheduled message")
		reason := describeSendError(err)
		if errors.Is(err, outbox.ErrNotLinked) {
			reason = "the clinic number is not connected"
		}
		c.finishLater(ctx, m, "", reason, text)
		return true
	case sent.Via == database.ModeSecure:
		c.finishLater(ctx, m, "secure", "", text)
		return true
	}
	c.trackTextOnNotice(ctx, conv, sent.SMS, c.finishLater(ctx, m, "sms", "", text))
	// Not a reply to a waiting patient: a follow-up staff wrote in advance does not end a
	// wait nor count in the response times (onStaffReply is not called).
	return true
}

// finishLater records a claimed message's outcome (sent by "sms" or "secure", or failed
// for reason) with its audit row, and tells the room. It returns the notice's event.
func (c *Connector) finishLater(ctx context.Context, m *database.ScheduledMessage, via, reason, text string) id.EventID {
	log := zerolog.Ctx(ctx)
	state, outcome, detail := database.ScheduledSent, database.OutcomeOK, fmt.Sprintf("#%d by %s", m.ID, via)
	if via == "" {
		state, outcome, detail = database.ScheduledFailed, database.OutcomeFailed, fmt.Sprintf("#%d: %s", m.ID, reason)
	}
	conv := &database.Conversation{LoginID: m.LoginID, PortalID: m.PortalID}
	err := c.audited(ctx, convAudit(conv, m.Actor(), database.EventFollowUpSent, outcome, detail), func(ctx context.Context) error {
		_, err := c.DB.Scheduled().Finish(ctx, m.ID, state, c.now(), reason)
		return err
	})
	if err != nil {
		// Left as sending: the next start reports it to staff instead of sending it again.
		log.Err(err).Str("outcome", string(outcome)).Msg("Failed to record the outcome of a scheduled message")
	}
	var notice string
	switch via {
	case "sms":
		log.Info().Msg("Sent a scheduled message by SMS")
		notice = fmt.Sprintf("Scheduled message %d sent: %s", m.ID, text)
	case "secure":
		log.Info().Msg("Put a scheduled message into the secure chat")
		notice = fmt.Sprintf("🔒 Scheduled message %d sent to the secure chat: %s", m.ID, text)
	default:
		log.Warn().Str("reason", reason).Msg("A scheduled message could not be sent")
		notice = fmt.Sprintf("⚠️ Scheduled message %d was not sent: %s.", m.ID, reason)
		if text != "" {
			notice += " The text was: " + text
		}
	}
	return c.laterNotice(ctx, m, notice)
}

// laterNotice tells a scheduled message's room about it.
func (c *Connector) laterNotice(ctx context.Context, m *database.ScheduledMessage, text string) id.EventID {
	portal, err := c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(m.PortalID),
		Receiver: networkid.UserLoginID(m.LoginID)})
	if err != nil || portal == nil || portal.MXID == "" {
		zerolog.Ctx(ctx).Err(err).Msg("No room to tell about a scheduled message")
		return ""
	}
	return c.sendNotice(ctx, portal, text)
}

// trackTextOnNotice records a text the bridge sent on its own (a follow-up, an
// integration's message) under the room notice that shows it, so that Twilio's delivery
// updates show on the notice as they do on a staff message. It returns the text's status.
func (c *Connector) trackTextOnNotice(ctx context.Context, conv *database.Conversation, sent *sms.SentMessage, noticeID id.EventID) string {
	status := sent.Status
	if status == "" {
		status = "queued"
	}
	if noticeID == "" {
		return status
	}
	// The outbox recorded the text when Twilio accepted it; the notice came after.
	err := c.DB.Outbound.SetEvent(ctx, sent.SID, noticeID.String(), c.Bridge.Bot.GetMXID().String())
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Str("message_sid", sent.SID).Msg("Failed to record a text the bridge sent")
	}
	return status
}
