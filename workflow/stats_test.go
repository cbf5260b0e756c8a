package workflow

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/carebridge/carebridge/database"
)

func minutes(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Minute
	}
	return out
}

func TestMedianAndNinetiethPercentileAreNearestRankWaits(t *testing.T) {
	tests := []struct {
		name  string
		waits []time.Duration
		want  WaitSummary
	}{
		{"no waits", nil, WaitSummary{}},
		{"one wait", []time.Duration{10 * time.Minute}, WaitSummary{Count: 1, Median: 10 * time.Minute, Pct90: 10 * time.Minute}},
		{"ten waits, 10m down to 1m", minutes(10, 9, 8, 7, 6, 5, 4, 3, 2, 1),
			WaitSummary{Count: 10, Median: 5 * time.Minute, Pct90: 9 * time.Minute}},
		{"a slow morning", minutes(2, 4, 95), WaitSummary{Count: 3, Median: 4 * time.Minute, Pct90: 95 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, SummarizeWaits(tt.waits))
		})
	}
	waits := []time.Duration{10 * time.Minute, time.Minute}
	SummarizeWaits(waits)
	assert.Equal(t, 10*time.Minute, waits[0], "the caller's slice is not reordered")
}

func TestTheClinicWeekStartsOnMondayInTheClinicsZone(t *testing.T) {
	ny := newYork(t)
	// Sunday 8 March 2026, 01:30 in New York is still in the week that began on Monday 2 March.
	day, week := ClinicDayAndWeek(time.Date(2026, 3, 8, 6, 30, 0, 0, time.UTC), ny)
	assert.Equal(t, time.Date(2026, 3, 8, 0, 0, 0, 0, ny), day)
	assert.Equal(t, time.Date(2026, 3, 2, 0, 0, 0, 0, ny), week)
	day, week = ClinicDayAndWeek(time.Date(2026, 3, 9, 12, 0, 0, 0, ny), ny)
	assert.Equal(t, day, week, "on a Monday the week starts today")
}

func TestStatsReportTodayThisWeekAndWhoIsWaiting(t *testing.T) {
	ny := newYork(t)
	// Wednesday 4 March 2026, 15:00 in New York.
	now := time.Date(2026, 3, 4, 15, 0, 0, 0, ny)
	answered := func(from time.Time, wait time.Duration) *database.ResponseTime {
		return &database.ResponseTime{LoginID: "15550001111", PortalID: "15551234567", WaitedFrom: from,
			AnsweredAt: from.Add(wait), AnsweredBy: "@nurse:clinic.example"}
	}
	rows := []*database.ResponseTime{
		answered(time.Date(2026, 3, 2, 9, 0, 0, 0, ny), 40*time.Minute),   // Monday
		answered(time.Date(2026, 3, 3, 23, 50, 0, 0, ny), 20*time.Minute), // answered today, 00:10
		answered(time.Date(2026, 3, 4, 10, 0, 0, 0, ny), 5*time.Minute),
		answered(time.Date(2026, 3, 4, 11, 0, 0, 0, ny), 12*time.Minute),
	}
	tests := []struct {
		name    string
		rows    []*database.ResponseTime
		backlog database.Backlog
		want    []string
	}{
		{"a week of answers, two waiting", rows, database.Backlog{Waiting: 2, Oldest: now.Add(-2*time.Hour - 10*time.Minute)}, []string{
			"Response times for (555) 000-1111 (clinic time, America/New_York):\n\n",
			"* Today: 3 answered, median 12m, 90th percentile 20m\n",
			"* This week (since Mon 2 Mar): 4 answered, median 12m, 90th percentile 40m\n",
			"* Waiting now: 2 conversations, the oldest for 2h 10m\n",
		}},
		{"one waiting", rows[:1], database.Backlog{Waiting: 1, Oldest: now.Add(-7 * time.Minute)}, []string{
			"* Today: 0 answered\n",
			"* This week (since Mon 2 Mar): 1 answered, median 40m, 90th percentile 40m\n",
			"* Waiting now: 1 conversation, for 7m\n",
		}},
		{"a quiet week", nil, database.Backlog{}, []string{"* Today: 0 answered\n", "* Waiting now: nobody\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			report := StatsReport("(555) 000-1111", now, ny, tt.rows, tt.backlog)
			for _, line := range tt.want {
				assert.Contains(t, report, line)
			}
		})
	}
}

func TestWaitsAreShownInWholeMinutesHoursAndDays(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want string
	}{
		{-time.Minute, "0m"},
		{59 * time.Second, "0m"},
		{5*time.Minute + 30*time.Second, "5m"},
		{2*time.Hour + 10*time.Minute, "2h 10m"},
		{3*24*time.Hour + 4*time.Hour + 59*time.Minute, "3d 4h"},
	} {
		assert.Equal(t, tc.want, FormatWait(tc.wait), tc.wait.String())
	}
}
