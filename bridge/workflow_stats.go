package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// Response times: a patient's text starts a wait (conversation.waiting_since, set when it
// reaches the room); the first staff reply ends it and records the time to first reply.
// `!sms stats` summarises them by the clinic's day and week.

// recordStaffReply ends the patient's wait with the first staff reply and records its time.
func (c *Connector) recordStaffReply(ctx context.Context, portal *bridgev2.Portal, conv *database.Conversation, sender id.UserID) {
	if conv.WaitingSince.IsZero() {
		return
	}
	recorded, err := c.DB.ResponseTimes().EndWait(ctx, &database.ResponseTime{LoginID: conv.LoginID, PortalID: conv.PortalID,
		WaitedFrom: conv.WaitingSince, AnsweredAt: c.now(), AnsweredBy: sender.String()})
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to record the response time")
		return
	}
	if recorded {
		c.metrics.FirstReply(c.now().Sub(conv.WaitingSince))
		conv.WaitingSince = time.Time{}
	}
}

func fnStats(ce *commands.Event) {
	c := ce.Bridge.Network.(*Connector)
	loginID, scope := "", "all clinic numbers"
	if ce.Portal != nil {
		loginID = string(ce.Portal.Receiver)
		if login := c.Bridge.GetCachedUserLoginByID(ce.Portal.Receiver); login != nil {
			scope = sms.FormatPhone(login.Metadata.(*UserLoginMetadata).Phone, c.Config.DefaultRegion)
		} else {
			scope = "this clinic number"
		}
	} else if ce.User.ManagementRoom != ce.RoomID {
		ce.Reply("Use `$cmdprefix stats` in a conversation room (its clinic number) or in your management room (all numbers).")
		return
	}
	report, err := c.statsReport(ce.Ctx, loginID, scope)
	if err != nil {
		ce.Log.Err(err).Msg("Failed to compute response times")
		ce.Reply("Failed to compute the response times; try again.")
		return
	}
	ce.Reply("%s", report)
}

// statsReport is the text of `!sms stats` for one clinic number (or all, with "").
func (c *Connector) statsReport(ctx context.Context, loginID, scope string) (string, error) {
	loc := workflow.ClinicLocation(&c.Config.BusinessHours)
	now := c.now()
	_, week := workflow.ClinicDayAndWeek(now, loc)
	// Answers are never after now, except when the test clock was moved back.
	rows, err := c.DB.ResponseTimes().List(ctx, loginID, week, now.Add(time.Millisecond))
	if err != nil {
		return "", fmt.Errorf("failed to read response times: %w", err)
	}
	backlog, err := c.DB.ResponseTimes().Backlog(ctx, loginID)
	if err != nil {
		return "", fmt.Errorf("failed to read the backlog: %w", err)
	}
	return workflow.StatsReport(scope, now, loc, rows, *backlog), nil
}
