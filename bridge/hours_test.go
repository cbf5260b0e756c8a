package bridge

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
func clinicHours(t *testing.T) *businessHours {
	t.Helper()
	h, err := parseBusinessHours(&config.BusinessHoursConfig{
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

func TestBusinessHours(t *testing.T) {
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
			got := h.at(tt.now)
			assert.Equal(t, tt.open, got.Open)
			assert.True(t, tt.closedSince.Equal(got.ClosedSince), "closed since %v, want %v", got.ClosedSince, tt.closedSince)
			assert.True(t, tt.opensAt.Equal(got.OpensAt), "opens at %v, want %v", got.OpensAt, tt.opensAt)
		})
	}
	// The same instant seen from another zone is the same answer.
	utc := h.at(at(2026, 3, 4, 22, 15).UTC())
	assert.True(t, utc.ClosedSince.Equal(at(2026, 3, 4, 17, 0)))
	assert.Equal(t, 43*time.Hour, at(2026, 3, 9, 8, 0).Sub(at(2026, 3, 7, 12, 0)), "the spring-forward weekend is an hour short")
}

func TestBusinessHoursEdges(t *testing.T) {
	ny := newYork(t)
	at := func(y int, m time.Month, d, hh, mm int) time.Time { return time.Date(y, m, d, hh, mm, 0, 0, ny) }

	always, err := parseBusinessHours(&config.BusinessHoursConfig{TimeZone: "America/New_York"})
	require.NoError(t, err)
	for _, now := range []time.Time{at(2026, 3, 8, 3, 0), at(2026, 12, 25, 23, 59)} {
		assert.True(t, always.at(now).Open, "no weekly hours: always open")
	}

	// A range through the skipped hour of the spring-forward night keeps its wall-clock
	// ends: 01:00 EST to 04:00 EDT is two hours.
	night, err := parseBusinessHours(&config.BusinessHoursConfig{TimeZone: "America/New_York",
		Weekly: map[string]string{"sun": "01:00-04:00"}})
	require.NoError(t, err)
	assert.True(t, night.at(at(2026, 3, 8, 3, 30)).Open)
	st := night.at(at(2026, 3, 8, 4, 30))
	assert.False(t, st.Open)
	assert.True(t, st.ClosedSince.Equal(time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC)), "04:00 EDT")
	assert.True(t, st.OpensAt.Equal(at(2026, 3, 15, 1, 0)))

	// Open until midnight and on after it: no closed period at midnight.
	late, err := parseBusinessHours(&config.BusinessHoursConfig{TimeZone: "UTC",
		Weekly: map[string]string{"sat": "20:00-24:00", "sun": "00:00-02:00"}})
	require.NoError(t, err)
	sat := func(d, hh, mm int) time.Time { return time.Date(2026, 3, d, hh, mm, 0, 0, time.UTC) }
	assert.True(t, late.at(sat(7, 23, 59)).Open)
	assert.True(t, late.at(sat(8, 0, 0)).Open)
	st = late.at(sat(8, 3, 0))
	assert.False(t, st.Open)
	assert.True(t, st.ClosedSince.Equal(sat(8, 2, 0)))
	assert.True(t, st.OpensAt.Equal(sat(14, 20, 0)))

	// Hours configured, every day closed: one closed period, no opening to tell.
	never, err := parseBusinessHours(&config.BusinessHoursConfig{TimeZone: "UTC", Weekly: map[string]string{"mon": "closed"}})
	require.NoError(t, err)
	st = never.at(sat(8, 3, 0))
	assert.False(t, st.Open)
	assert.True(t, st.OpensAt.IsZero())
	assert.True(t, st.ClosedSince.Before(sat(8, 3, 0).AddDate(-1, 0, 0)), "closed for over a year: one reply a year")
}

func TestOpensAgainText(t *testing.T) {
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
		assert.Equal(t, tt.en, opensAgainText("en", tt.now, tt.opens, ny))
		assert.Equal(t, tt.es, opensAgainText("es", tt.now, tt.opens, ny))
	}
	assert.Empty(t, opensAgainText("en", at(3, 4, 6, 0), time.Time{}, ny), "no opening: no sentence")
}
