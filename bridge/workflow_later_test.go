package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseLater(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	// Friday 6 March 2026, 14:30 in New York; DST starts on Sunday 8 March.
	now := time.Date(2026, 3, 6, 14, 30, 0, 0, ny)
	tests := []struct {
		args   string
		sendAt time.Time
		text   string
		err    string
	}{
		{"2026-12-01 09:00 Please book your flu shot.", time.Date(2026, 12, 1, 9, 0, 0, 0, ny), "Please book your flu shot.", ""},
		{"  2026-03-06   15:00   How is the knee?  ", time.Date(2026, 3, 6, 15, 0, 0, 0, ny), "How is the knee?", ""},
		{"3d How is your knee today?", time.Date(2026, 3, 9, 14, 30, 0, 0, ny), "How is your knee today?", ""},
		{"2h Take the second dose now.", now.Add(2 * time.Hour), "Take the second dose now.", ""},
		{"90m Reminder: fasting from now.", now.Add(90 * time.Minute), "Reminder: fasting from now.", ""},
		{"1d12h Line one\nline two", time.Date(2026, 3, 7, 14, 30, 0, 0, ny).Add(12 * time.Hour), "Line one\nline two", ""},
		{"0m Hello", time.Time{}, "", "no delay"},
		{"0d0h Hello", time.Time{}, "", "no delay"},
		{"-2h Hello", time.Time{}, "", "in the past"},
		{"2026-03-06 14:00 Too late", time.Time{}, "", "already passed"},
		{"2026-03-06 14:30 Exactly now", time.Time{}, "", "already passed"},
		{"2027-03-07 09:00 Too far", time.Time{}, "", "more than a year ahead"},
		{"400d Too far", time.Time{}, "", "more than a year ahead"},
		{"9000h Too far", time.Time{}, "", "more than a year ahead"},
		{"2026-13-01 09:00 Bad month", time.Time{}, "", "is not a date and time"},
		{"2026-12-01 9am Bad clock", time.Time{}, "", "is not a date and time"},
		{"3d", time.Time{}, "", "the message is missing"},
		{"2026-12-01 09:00", time.Time{}, "", "the message is missing"},
		{"tomorrow Hello", time.Time{}, "", "Usage"},
		{"3 days Hello", time.Time{}, "", "Usage"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			sendAt, text, err := parseLater(tt.args, now.UTC(), ny)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.True(t, tt.sendAt.Equal(sendAt), "send at %s, want %s", sendAt, tt.sendAt)
			assert.Equal(t, tt.text, text)
		})
	}
}

func TestSummarizeWaits(t *testing.T) {
	assert.Equal(t, waitSummary{}, summarizeWaits(nil))
	assert.Equal(t, waitSummary{Count: 1, Median: 10 * time.Minute, Pct90: 10 * time.Minute},
		summarizeWaits([]time.Duration{10 * time.Minute}))
	var waits []time.Duration
	for i := 10; i >= 1; i-- {
		waits = append(waits, time.Duration(i)*time.Minute)
	}
	assert.Equal(t, waitSummary{Count: 10, Median: 5 * time.Minute, Pct90: 9 * time.Minute}, summarizeWaits(waits))
	assert.Equal(t, 10*time.Minute, waits[0], "the caller's slice is not reordered")
}

func TestClinicDayAndWeek(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	// Sunday 8 March 2026, 01:30 in New York is still in the week that began on Monday 2 March.
	day, week := clinicDayAndWeek(time.Date(2026, 3, 8, 6, 30, 0, 0, time.UTC), ny)
	assert.Equal(t, time.Date(2026, 3, 8, 0, 0, 0, 0, ny), day)
	assert.Equal(t, time.Date(2026, 3, 2, 0, 0, 0, 0, ny), week)
	day, week = clinicDayAndWeek(time.Date(2026, 3, 9, 12, 0, 0, 0, ny), ny)
	assert.Equal(t, day, week, "on a Monday the week starts today")
}
