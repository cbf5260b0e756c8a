package bridge

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/workflow"
)

// Scheduled follow-ups (`!sms later`): staff write a message now for the patient to get
// later. It is sealed at rest until due, then sent by the conversation's mode at that time,
// at most once: a message is claimed (pending → sending) before it goes out, and a claim
// whose outcome was never recorded (a crash mid-send) is reported to staff, not resent.

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
	m, err := c.FollowUps.Schedule(ce.Ctx, conv, ce.User.MXID.String(), c.staffName(ce.Ctx, ce.Portal, ce.User.MXID), sendAt, text)
	var tooMany *conversation.TooManySegmentsError
	if errors.As(err, &tooMany) {
		ce.Reply("Not scheduled: %s.", tooMany.Error())
		return
	} else if err != nil {
		ce.Log.Err(err).Msg("Failed to schedule a message")
		ce.Reply("Failed to schedule the message; try again.")
		return
	}
	ce.Reply("%s", withPrefix(ce, workflow.LaterScheduled(m.ID, sendAt, now, loc)))
}

func listLater(ce *commands.Event, c *Connector, conv *database.Conversation) {
	entries, err := c.FollowUps.List(ce.Ctx, conv)
	if err != nil {
		ce.Log.Err(err).Msg("Failed to list scheduled messages")
		ce.Reply("Failed to list the scheduled messages; try again.")
		return
	}
	if len(entries) == 0 {
		ce.Reply("No message is scheduled in this conversation. " + workflow.LaterUsage)
		return
	}
	ce.Reply("%s", withPrefix(ce, workflow.LaterList(entries, workflow.ClinicLocation(&c.Config.BusinessHours))))
}

func cancelLater(ce *commands.Event, c *Connector, conv *database.Conversation, arg string) {
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(arg), "#"), 10, 64)
	if err != nil || n <= 0 {
		ce.Reply("Usage: `$cmdprefix later cancel <number>`; `$cmdprefix later` lists the numbers.")
		return
	}
	err = c.FollowUps.Cancel(ce.Ctx, conv, database.StaffActor(ce.User.MXID), n)
	var notCancellable *conversation.NotCancellableError
	switch {
	case errors.Is(err, conversation.ErrNoFollowUp):
		ce.Reply("There is no scheduled message %d in this conversation; `$cmdprefix later` lists them.", n)
	case errors.As(err, &notCancellable):
		ce.Reply("Scheduled message %d cannot be cancelled: %s.", n, notCancellable.Error())
	case err != nil:
		ce.Log.Err(err).Msg("Failed to cancel a scheduled message")
		ce.Reply("Failed to cancel; try again.")
	default:
		ce.Reply("Scheduled message %d is cancelled; it will not be sent.", n)
	}
}

// withPrefix puts the command prefix into a reply passed as an argument (ce.Reply only
// replaces it in the format).
func withPrefix(ce *commands.Event, text string) string {
	return strings.ReplaceAll(text, "$cmdprefix", ce.Bridge.Config.CommandPrefix)
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
