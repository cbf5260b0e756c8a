package workflow

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

func TestLaterSpecIsADelayOrAClinicTimeDateAndRefusesWithReasons(t *testing.T) {
	ny := newYork(t)
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
		{"1m Your taxi is outside.", now.Add(time.Minute), "Your taxi is outside.", ""},
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
			sendAt, text, err := ParseLater(tt.args, now.UTC(), ny)
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
	_, _, err := ParseLater("soon Hello", now, ny)
	assert.ErrorIs(t, err, ErrLaterUsage, "not a schedule: the usage")
}

func TestLaterIsShownInClinicTimeAndInHowLongFromTheMomentItWasRead(t *testing.T) {
	ny := newYork(t)
	now := time.Date(2026, 3, 6, 14, 30, 20, 0, ny)
	tests := []struct {
		args, when, in string
	}{
		{"1m Your taxi is outside.", "Fri 6 Mar 2026, 14:31 EST", "(in 1m)"},
		{"90m Reminder: fasting from now.", "Fri 6 Mar 2026, 16:00 EST", "(in 1h 30m)"},
		// Three calendar days across the spring-forward night: 71 hours.
		{"3d How is your knee today?", "Mon 9 Mar 2026, 14:30 EDT", "(in 2d 23h)"},
		{"2026-12-01 09:00 Please book your flu shot.", "Tue 1 Dec 2026, 09:00 EST", "(in 269d 18h)"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			sendAt, _, err := ParseLater(tt.args, now, ny)
			require.NoError(t, err)
			assert.Equal(t, tt.when, LaterTime(sendAt, ny))
			answer := LaterScheduled(12, sendAt, now, ny)
			assert.Contains(t, answer, "Scheduled message 12 will be sent "+tt.when+" "+tt.in)
			assert.Contains(t, answer, "`$cmdprefix later cancel 12`")
		})
	}
}

func TestTheLaterListShowsNumberClinicTimeAuthorAndTheStartOfEachText(t *testing.T) {
	ny := newYork(t)
	list := LaterList([]LaterEntry{
		{Message: &database.ScheduledMessage{ID: 3, SendAt: time.Date(2026, 3, 9, 19, 30, 0, 0, time.UTC), CreatedBy: "@nurse:clinic.example"},
			Text: "How is the knee today? Reply here if the swelling is worse."},
		{Message: &database.ScheduledMessage{ID: 5, SendAt: time.Date(2026, 3, 16, 13, 0, 0, 0, time.UTC), CreatedBy: "@dr.ng:clinic.example"},
			Text: "Time to book your follow-up appointment: reply with a day that suits you."},
		{Message: &database.ScheduledMessage{ID: 6, SendAt: time.Date(2026, 3, 17, 13, 0, 0, 0, time.UTC), CreatedBy: "@dr.ng:clinic.example"},
			Unreadable: `it was sealed with the key "2025-q4", which this bridge no longer has`},
	}, ny)
	assert.Equal(t, "Scheduled messages of this conversation (clinic time):\n\n"+
		"* 3 · Mon 9 Mar 2026, 15:30 EDT · @nurse:clinic.example · How is the knee today? Reply here if the swelling is worse.\n"+
		"* 5 · Mon 16 Mar 2026, 09:00 EDT · @dr.ng:clinic.example · Time to book your follow-up appointment: reply with a day th…\n"+
		"* 6 · Tue 17 Mar 2026, 09:00 EDT · @dr.ng:clinic.example · (cannot be opened: it was sealed with the key \"2025-q4\", which this bridge no longer has)\n"+
		"\nCancel one with `$cmdprefix later cancel <number>`.", list)
}

func TestCutWordAndPreview(t *testing.T) {
	word, rest := CutWord("  cancel   3 ")
	assert.Equal(t, "cancel", word)
	assert.Equal(t, "3 ", rest)
	word, rest = CutWord("list")
	assert.Equal(t, "list", word)
	assert.Empty(t, rest)

	assert.Equal(t, "How is the knee today?", PreviewText("How is the\nknee   today?", 60))
	assert.Equal(t, "Time to book your…", PreviewText("Time to book your follow-up appointment", 17))
	assert.Equal(t, "Ñandú día…", PreviewText("Ñandú día de campo", 9), "counted in characters, not bytes")
}

func TestAScheduledMessageThatCannotBeCancelledSaysWhy(t *testing.T) {
	for state, want := range map[database.ScheduledState]string{
		database.ScheduledSending:   "being sent right now",
		database.ScheduledSent:      "already sent",
		database.ScheduledCancelled: "already cancelled",
		database.ScheduledFailed:    "a message that could not be sent",
	} {
		assert.Equal(t, want, DescribeScheduledState(state))
	}
}
