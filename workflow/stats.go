package workflow

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/carebridge/carebridge/database"
)

// Response times: a patient's text starts a wait, the first staff reply ends it. `!sms
// stats` summarises the answered waits by the clinic's day and week (median and 90th
// percentile) and tells who is waiting now.

// WaitSummary is the answered waits of a period.
type WaitSummary struct {
	Count         int
	Median, Pct90 time.Duration
}

// SummarizeWaits counts waits and takes their median and 90th percentile by the
// nearest-rank method (each is one of the waits, never an interpolation).
func SummarizeWaits(waits []time.Duration) WaitSummary {
	if len(waits) == 0 {
		return WaitSummary{}
	}
	sorted := slices.Clone(waits)
	slices.Sort(sorted)
	rank := func(p float64) time.Duration {
		return sorted[max(int(math.Ceil(p*float64(len(sorted))))-1, 0)]
	}
	return WaitSummary{Count: len(sorted), Median: rank(0.5), Pct90: rank(0.9)}
}

// ClinicDayAndWeek are the starts of today and of this week (Monday) in loc.
func ClinicDayAndWeek(now time.Time, loc *time.Location) (day, week time.Time) {
	now = now.In(loc)
	day = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	week = day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	return day, week
}

// ResponseTimes is where the answered waits and the backlog are kept
// (database.ResponseTimeQuery).
type ResponseTimes interface {
	List(ctx context.Context, loginID string, since, until time.Time) ([]*database.ResponseTime, error)
	Backlog(ctx context.Context, loginID string) (*database.Backlog, error)
}

// Stats is the text of `!sms stats` at now for one clinic number's login (all of them with
// loginID ""), named scope, in the clinic's time zone loc.
func Stats(ctx context.Context, times ResponseTimes, loginID, scope string, now time.Time, loc *time.Location) (string, error) {
	_, week := ClinicDayAndWeek(now, loc)
	// Answers are never after now, except when the test clock was moved back.
	rows, err := times.List(ctx, loginID, week, now.Add(time.Millisecond))
	if err != nil {
		return "", fmt.Errorf("failed to read response times: %w", err)
	}
	backlog, err := times.Backlog(ctx, loginID)
	if err != nil {
		return "", fmt.Errorf("failed to read the backlog: %w", err)
	}
	return StatsReport(scope, now, loc, rows, *backlog), nil
}

// StatsReport is the text of `!sms stats` for scope (a clinic number, or all of them):
// answered holds the waits answered since the week began (ClinicDayAndWeek), backlog the
// patients waiting now.
func StatsReport(scope string, now time.Time, loc *time.Location, answered []*database.ResponseTime, backlog database.Backlog) string {
	day, week := ClinicDayAndWeek(now, loc)
	var today, thisWeek []time.Duration
	for _, r := range answered {
		thisWeek = append(thisWeek, r.Wait())
		if !r.AnsweredAt.Before(day) {
			today = append(today, r.Wait())
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Response times for %s (clinic time, %s):\n\n", scope, loc.String())
	fmt.Fprintf(&b, "* Today: %s\n", describeWaits(SummarizeWaits(today)))
	fmt.Fprintf(&b, "* This week (since %s): %s\n", week.Format("Mon 2 Jan"), describeWaits(SummarizeWaits(thisWeek)))
	switch backlog.Waiting {
	case 0:
		fmt.Fprintf(&b, "* Waiting now: nobody\n")
	case 1:
		fmt.Fprintf(&b, "* Waiting now: 1 conversation, for %s\n", FormatWait(now.Sub(backlog.Oldest)))
	default:
		fmt.Fprintf(&b, "* Waiting now: %d conversations, the oldest for %s\n", backlog.Waiting, FormatWait(now.Sub(backlog.Oldest)))
	}
	return b.String()
}

func describeWaits(s WaitSummary) string {
	if s.Count == 0 {
		return "0 answered"
	}
	return fmt.Sprintf("%d answered, median %s, 90th percentile %s", s.Count, FormatWait(s.Median), FormatWait(s.Pct90))
}

// FormatWait writes a wait as "3d 4h", "2h 10m" or "5m" (whole minutes, never negative).
func FormatWait(d time.Duration) string {
	d = max(d, 0).Truncate(time.Minute)
	days, hours, minutes := int(d/(24*time.Hour)), int(d/time.Hour)%24, int(d/time.Minute)%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, minutes)
	default:
		return fmt.Sprintf("%dm", minutes)
	}
}
