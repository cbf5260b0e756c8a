package bridge

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

// Response times: a patient's text starts a wait (conversation.waiting_since, set when it
// reaches the room); the first staff reply ends it and records the time to first reply.
// `!sms stats` summarises them by the clinic's day and week.

func init() {
	workflowHandlers = append(workflowHandlers, cmdStats)
}

var cmdStats = &commands.FullHandler{
	Name: "stats",
	Help: commands.HelpMeta{
		Section: HelpSectionCarebridge,
		Description: "Show response times (today and this week: answered waits, median and 90th percentile time to " +
			"first reply) and who is waiting now, for this room's clinic number, or all numbers in the management room",
	},
	Func: fnStats,
}

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

// waitSummary is the answered waits of a period.
type waitSummary struct {
	Count         int
	Median, Pct90 time.Duration
}

// summarizeWaits counts waits and takes their median and 90th percentile by the
// nearest-rank method (each is one of the waits, never an interpolation).
func summarizeWaits(waits []time.Duration) waitSummary {
	if len(waits) == 0 {
		return waitSummary{}
	}
	sorted := slices.Clone(waits)
	slices.Sort(sorted)
	rank := func(p float64) time.Duration {
		return sorted[max(int(math.Ceil(p*float64(len(sorted))))-1, 0)]
	}
	return waitSummary{Count: len(sorted), Median: rank(0.5), Pct90: rank(0.9)}
}

// clinicDayAndWeek are the starts of today and of this week (Monday) in loc.
func clinicDayAndWeek(now time.Time, loc *time.Location) (day, week time.Time) {
	now = now.In(loc)
	day = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	week = day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	return day, week
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
	loc := c.clinicLocation()
	now := c.now()
	day, week := clinicDayAndWeek(now, loc)
	// Answers are never after now, except when the test clock was moved back.
	rows, err := c.DB.ResponseTimes().List(ctx, loginID, week, now.Add(time.Millisecond))
	if err != nil {
		return "", fmt.Errorf("failed to read response times: %w", err)
	}
	var today, thisWeek []time.Duration
	for _, r := range rows {
		thisWeek = append(thisWeek, r.Wait())
		if !r.AnsweredAt.Before(day) {
			today = append(today, r.Wait())
		}
	}
	backlog, err := c.DB.ResponseTimes().Backlog(ctx, loginID)
	if err != nil {
		return "", fmt.Errorf("failed to read the backlog: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Response times for %s (clinic time, %s):\n\n", scope, loc.String())
	fmt.Fprintf(&b, "* Today: %s\n", describeWaits(summarizeWaits(today)))
	fmt.Fprintf(&b, "* This week (since %s): %s\n", week.Format("Mon 2 Jan"), describeWaits(summarizeWaits(thisWeek)))
	switch backlog.Waiting {
	case 0:
		fmt.Fprintf(&b, "* Waiting now: nobody\n")
	case 1:
		fmt.Fprintf(&b, "* Waiting now: 1 conversation, for %s\n", formatWait(now.Sub(backlog.Oldest)))
	default:
		fmt.Fprintf(&b, "* Waiting now: %d conversations, the oldest for %s\n", backlog.Waiting, formatWait(now.Sub(backlog.Oldest)))
	}
	return b.String(), nil
}

func describeWaits(s waitSummary) string {
	if s.Count == 0 {
		return "0 answered"
	}
	return fmt.Sprintf("%d answered, median %s, 90th percentile %s", s.Count, formatWait(s.Median), formatWait(s.Pct90))
}
