package workflow

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/config"
)

func newYork(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	return loc
}

// clinicHours is a family practice: weekdays with a lunch break, Saturday mornings,
// closed on Sunday and on Christmas Day (a Friday in 2026).
func clinicHours(t *testing.T) *BusinessHours {
	t.Helper()
	h, err := ParseBusinessHours(&config.BusinessHoursConfig{
		TimeZone: "America/New_York",
		Weekly: map[string]string{
			"mon": "08:00-12:00, 13:00-17:00", "tue": "08:00-12:00, 13:00-17:00", "wed": "08:00-12:00, 13:00-17:00",
			"thu": "08:00-12:00, 13:00-17:00", "fri": "08:00-12:00, 13:00-17:00", "sat": "09:00-12:00", "sun": "closed",
		},
		Holidays: []string{"2026-12-25"},
	})
	require.NoError(t, err)
	return h
}

// The clinic is open within its weekly ranges; closed, it knows since when and when it
// opens again, across lunch breaks, weekends, holidays and DST changes.
func TestClinicIsOpenWithinItsHoursAndKnowsWhenItOpensAgain(t *testing.T) {
	ny := newYork(t)
	at := func(y int, m time.Month, d, hh, mm int) time.Time { return time.Date(y, m, d, hh, mm, 0, 0, ny) }
	tests := []struct {
		name        string
		now         time.Time
		open        bool
		closedSince time.Time
		opensAt     time.Time
	}{
		{"weekday morning", at(2026, 3, 4, 10, 0), true, time.Time{}, time.Time{}},
		{"opening minute is open", at(2026, 3, 4, 8, 0), true, time.Time{}, time.Time{}},
		{"lunch break of a split day", at(2026, 3, 4, 12, 30), false, at(2026, 3, 4, 12, 0), at(2026, 3, 4, 13, 0)},
		{"closing minute is closed", at(2026, 3, 4, 17, 0), false, at(2026, 3, 4, 17, 0), at(2026, 3, 5, 8, 0)},
		{"weekday night", at(2026, 3, 4, 22, 15), false, at(2026, 3, 4, 17, 0), at(2026, 3, 5, 8, 0)},
		{"early morning", at(2026, 3, 5, 6, 45), false, at(2026, 3, 4, 17, 0), at(2026, 3, 5, 8, 0)},
		{"saturday afternoon", at(2026, 3, 7, 13, 0), false, at(2026, 3, 7, 12, 0), at(2026, 3, 9, 8, 0)},
		// Clocks spring forward on Sunday 8 March 2026: closed since Saturday noon EST,
		// open again Monday 08:00 EDT, 43 hours later.
		{"DST day (spring forward)", at(2026, 3, 8, 10, 0), false, at(2026, 3, 7, 12, 0), at(2026, 3, 9, 8, 0)},
		{"DST day (fall back)", at(2026, 11, 1, 1, 30), false, at(2026, 10, 31, 12, 0), at(2026, 11, 2, 8, 0)},
		{"holiday", at(2026, 12, 25, 10, 0), false, at(2026, 12, 24, 17, 0), at(2026, 12, 26, 9, 0)},
		{"evening before a holiday", at(2026, 12, 24, 19, 0), false, at(2026, 12, 24, 17, 0), at(2026, 12, 26, 9, 0)},
	}
	h := clinicHours(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.At(tt.now)
			assert.Equal(t, tt.open, got.Open)
			assert.True(t, tt.closedSince.Equal(got.ClosedSince), "closed since %v, want %v", got.ClosedSince, tt.closedSince)
			assert.True(t, tt.opensAt.Equal(got.OpensAt), "opens at %v, want %v", got.OpensAt, tt.opensAt)
		})
	}
	// The same instant seen from another zone is the same answer.
	utc := h.At(at(2026, 3, 4, 22, 15).UTC())
	assert.True(t, utc.ClosedSince.Equal(at(2026, 3, 4, 17, 0)))
	assert.Equal(t, 43*time.Hour, at(2026, 3, 9, 8, 0).Sub(at(2026, 3, 7, 12, 0)), "the spring-forward weekend is an hour short")
}

func TestBusinessHoursAcrossDSTAndMidnightAndWhenNeverOpen(t *testing.T) {
	ny := newYork(t)
	at := func(y int, m time.Month, d, hh, mm int) time.Time { return time.Date(y, m, d, hh, mm, 0, 0, ny) }

	always, err := ParseBusinessHours(&config.BusinessHoursConfig{TimeZone: "America/New_York"})
	require.NoError(t, err)
	for _, now := range []time.Time{at(2026, 3, 8, 3, 0), at(2026, 12, 25, 23, 59)} {
		assert.True(t, always.At(now).Open, "no weekly hours: always open")
	}

	// A range through the skipped hour of the spring-forward night keeps its wall-clock
	// ends: 01:00 EST to 04:00 EDT is two hours.
	night, err := ParseBusinessHours(&config.BusinessHoursConfig{TimeZone: "America/New_York",
		Weekly: map[string]string{"sun": "01:00-04:00"}})
	require.NoError(t, err)
	assert.True(t, night.At(at(2026, 3, 8, 3, 30)).Open)
	st := night.At(at(2026, 3, 8, 4, 30))
	assert.False(t, st.Open)
	assert.True(t, st.ClosedSince.Equal(time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC)), "04:00 EDT")
	assert.True(t, st.OpensAt.Equal(at(2026, 3, 15, 1, 0)))

	// Open until midnight and on after it: no closed period at midnight.
	late, err := ParseBusinessHours(&config.BusinessHoursConfig{TimeZone: "UTC",
		Weekly: map[string]string{"sat": "20:00-24:00", "sun": "00:00-02:00"}})
	require.NoError(t, err)
	sat := func(d, hh, mm int) time.Time { return time.Date(2026, 3, d, hh, mm, 0, 0, time.UTC) }
	assert.True(t, late.At(sat(7, 23, 59)).Open)
	assert.True(t, late.At(sat(8, 0, 0)).Open)
	st = late.At(sat(8, 3, 0))
	assert.False(t, st.Open)
	assert.True(t, st.ClosedSince.Equal(sat(8, 2, 0)))
	assert.True(t, st.OpensAt.Equal(sat(14, 20, 0)))

	// Hours configured, every day closed: one closed period, no opening to tell.
	never, err := ParseBusinessHours(&config.BusinessHoursConfig{TimeZone: "UTC", Weekly: map[string]string{"mon": "closed"}})
	require.NoError(t, err)
	st = never.At(sat(8, 3, 0))
	assert.False(t, st.Open)
	assert.True(t, st.OpensAt.IsZero())
	assert.True(t, st.ClosedSince.Before(sat(8, 3, 0).AddDate(-1, 0, 0)), "closed for over a year: one reply a year")
}

func TestOpensAgainSentenceInEnglishAndSpanish(t *testing.T) {
	ny := newYork(t)
	at := func(m time.Month, d, hh, mm int) time.Time { return time.Date(2026, m, d, hh, mm, 0, 0, ny) }
	tests := []struct {
		now, opens time.Time
		en, es     string
	}{
		{at(3, 4, 6, 0), at(3, 4, 8, 0), "We open again today at 8:00 AM.", "Abrimos de nuevo hoy a las 8:00."},
		{at(3, 4, 19, 0), at(3, 5, 8, 0), "We open again tomorrow at 8:00 AM.", "Abrimos de nuevo mañana a las 8:00."},
		{at(3, 4, 12, 30), at(3, 4, 13, 0), "We open again today at 1:00 PM.", "Abrimos de nuevo hoy a las 13:00."},
		{at(3, 7, 13, 0), at(3, 9, 8, 0), "We open again Monday at 8:00 AM.", "Abrimos de nuevo el lunes a las 8:00."},
		{at(3, 7, 23, 30), at(3, 8, 1, 0), "We open again tomorrow at 1:00 AM.", "Abrimos de nuevo mañana a la 1:00."},
		{at(12, 23, 18, 0), at(12, 30, 8, 30), "We open again Wednesday, December 30 at 8:30 AM.",
			"Abrimos de nuevo el miércoles 30 de diciembre a las 8:30."},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.en, OpensAgainText("en", tt.now, tt.opens, ny))
		assert.Equal(t, tt.es, OpensAgainText("es", tt.now, tt.opens, ny))
	}
	assert.Empty(t, OpensAgainText("en", at(3, 4, 6, 0), time.Time{}, ny), "no opening: no sentence")
}

func TestAfterHoursReplyOnlyWhileClosedOncePerClosedPeriod(t *testing.T) {
	ny := newYork(t)
	h := clinicHours(t)
	const custom = "Evergreen Family Practice is closed. We reply in the morning."
	tests := []struct {
		name, lang, configured string
		now                    time.Time
		want                   AfterHours
	}{
		{"open: no reply", "en", DefaultAfterHoursReply, time.Date(2026, 3, 4, 10, 0, 0, 0, ny), AfterHours{}},
		{"weekday night", "en", DefaultAfterHoursReply, time.Date(2026, 3, 4, 22, 15, 0, 0, ny), AfterHours{
			Closed: true, ClosedSince: time.Date(2026, 3, 4, 17, 0, 0, 0, ny), Template: DefaultAfterHoursReply,
			OpensAgain: "We open again tomorrow at 8:00 AM.", ForStaff: "We open again tomorrow at 8:00 AM.",
		}},
		{"later the same night: the same closed period", "en", DefaultAfterHoursReply, time.Date(2026, 3, 5, 6, 45, 0, 0, ny), AfterHours{
			Closed: true, ClosedSince: time.Date(2026, 3, 4, 17, 0, 0, 0, ny), Template: DefaultAfterHoursReply,
			OpensAgain: "We open again today at 8:00 AM.", ForStaff: "We open again today at 8:00 AM.",
		}},
		{"the default reply in Spanish", "es", "  " + DefaultAfterHoursReply, time.Date(2026, 3, 7, 13, 0, 0, 0, ny), AfterHours{
			Closed: true, ClosedSince: time.Date(2026, 3, 7, 12, 0, 0, 0, ny),
			Template:   "{clinic_name} está cerrado ahora. Le responderemos cuando abramos. Para emergencias llame al 911.",
			OpensAgain: "Abrimos de nuevo el lunes a las 8:00.", ForStaff: "We open again Monday at 8:00 AM.",
		}},
		{"a clinic's own words stay its own", "es", custom, time.Date(2026, 3, 7, 13, 0, 0, 0, ny), AfterHours{
			Closed: true, ClosedSince: time.Date(2026, 3, 7, 12, 0, 0, 0, ny), Template: custom,
			OpensAgain: "Abrimos de nuevo el lunes a las 8:00.", ForStaff: "We open again Monday at 8:00 AM.",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.AfterHours(tt.now, tt.lang, tt.configured)
			assert.True(t, tt.want.ClosedSince.Equal(got.ClosedSince), "closed since %v, want %v", got.ClosedSince, tt.want.ClosedSince)
			got.ClosedSince = tt.want.ClosedSince
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestClinicLocationIsUTCWhenUnset(t *testing.T) {
	assert.Equal(t, time.UTC, ClinicLocation(&config.BusinessHoursConfig{}))
	assert.Equal(t, "America/New_York", ClinicLocation(&config.BusinessHoursConfig{TimeZone: "America/New_York"}).String())
}
