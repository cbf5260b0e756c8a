package workflow

import (
	"fmt"
	"time"

	"github.com/carebridge/carebridge/config"
)

// hoursSearchDays bounds how far back and ahead the last closing and the next opening are
// looked for: a clinic closed for longer than a year is treated as closed since a year ago.
const hoursSearchDays = 366

// BusinessHours is network.business_hours parsed once: the opening ranges of each weekday
// and the closed dates, in the clinic's time zone.
type BusinessHours struct {
	loc      *time.Location
	weekly   [7][]config.OpenRange
	holidays map[string]bool
	// always is true when no weekly hours are configured: the clinic never closes.
	always bool
}

// HoursState is where a moment falls in the clinic's week.
type HoursState struct {
	Open bool
	// ClosedSince is when the current closed period began (the end of the last opening
	// range before the moment); zero while open.
	ClosedSince time.Time
	// OpensAt is the next opening after the moment; zero while open, or when the clinic
	// does not open within a year.
	OpensAt time.Time
}

type openInterval struct{ from, to time.Time }

// ParseBusinessHours reads the configuration; validation already refused bad values, so
// an error here means the config was changed without being validated.
func ParseBusinessHours(cfg *config.BusinessHoursConfig) (*BusinessHours, error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, fmt.Errorf("failed to load business_hours.time_zone: %w", err)
	}
	h := &BusinessHours{loc: loc, holidays: map[string]bool{}, always: len(cfg.Weekly) == 0}
	for i, day := range config.Weekdays {
		if h.weekly[i], err = config.ParseHours(cfg.Weekly[day]); err != nil {
			return nil, fmt.Errorf("failed to parse business_hours.weekly.%s: %w", day, err)
		}
	}
	for _, d := range cfg.Holidays {
		h.holidays[d] = true
	}
	return h, nil
}

// day returns the opening intervals of the calendar date y-m-d in the clinic's zone.
// time.Date normalises times a DST change skips or repeats, so a range across the change
// keeps its wall-clock ends.
func (h *BusinessHours) day(y int, m time.Month, d int) []openInterval {
	midnight := time.Date(y, m, d, 0, 0, 0, 0, h.loc)
	if h.holidays[midnight.Format(time.DateOnly)] {
		return nil
	}
	ranges := h.weekly[midnight.Weekday()]
	out := make([]openInterval, 0, len(ranges))
	for _, r := range ranges {
		y, m, d := midnight.Date()
		out = append(out, openInterval{
			from: time.Date(y, m, d, r.From/60, r.From%60, 0, 0, h.loc),
			to:   time.Date(y, m, d, r.To/60, r.To%60, 0, 0, h.loc),
		})
	}
	return out
}

// At says whether the clinic is open at t, and if not since when it is closed and when
// it opens again.
func (h *BusinessHours) At(t time.Time) HoursState {
	if h.always {
		return HoursState{Open: true}
	}
	t = t.In(h.loc)
	y, m, d := t.Date()
	for _, iv := range h.day(y, m, d) {
		if !t.Before(iv.from) && t.Before(iv.to) {
			return HoursState{Open: true}
		}
	}
	var st HoursState
	for off := 0; off >= -hoursSearchDays && st.ClosedSince.IsZero(); off-- {
		for _, iv := range h.day(y, m, d+off) {
			if !iv.to.After(t) && iv.to.After(st.ClosedSince) {
				st.ClosedSince = iv.to
			}
		}
	}
	if st.ClosedSince.IsZero() {
		// Never open within the search: one closed period that began a year ago.
		st.ClosedSince = time.Date(y, m, d-hoursSearchDays, 0, 0, 0, 0, h.loc)
	}
	for off := 0; off <= hoursSearchDays && st.OpensAt.IsZero(); off++ {
		for _, iv := range h.day(y, m, d+off) {
			if iv.from.After(t) && (st.OpensAt.IsZero() || iv.from.Before(st.OpensAt)) {
				st.OpensAt = iv.from
			}
		}
	}
	return st
}

var (
	weekdaysEN = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	weekdaysES = [7]string{"domingo", "lunes", "martes", "miércoles", "jueves", "viernes", "sábado"}
	monthsES   = [12]string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
		"septiembre", "octubre", "noviembre", "diciembre"}
)

// OpensAgainText is the sentence added to the after-hours reply: "We open again Monday at
// 8:00 AM." (or in Spanish), from the patient's now to the opening, both in the clinic's
// zone; "" when there is no opening to tell.
func OpensAgainText(lang string, now, opensAt time.Time, loc *time.Location) string {
	if opensAt.IsZero() {
		return ""
	}
	now, opensAt = now.In(loc), opensAt.In(loc)
	ny, nm, nd := now.Date()
	oy, om, od := opensAt.Date()
	// Calendar days between the dates, counted at noon so a DST day does not round wrong.
	days := int(time.Date(oy, om, od, 12, 0, 0, 0, time.UTC).Sub(time.Date(ny, nm, nd, 12, 0, 0, 0, time.UTC)).Hours() / 24)
	if lang == "es" {
		var when string
		switch {
		case days == 0:
			when = "hoy"
		case days == 1:
			when = "mañana"
		case days < 7:
			when = "el " + weekdaysES[opensAt.Weekday()]
		default:
			when = fmt.Sprintf("el %s %d de %s", weekdaysES[opensAt.Weekday()], od, monthsES[om-1])
		}
		article := "las"
		if opensAt.Hour() == 1 {
			article = "la"
		}
		return fmt.Sprintf("Abrimos de nuevo %s a %s %d:%02d.", when, article, opensAt.Hour(), opensAt.Minute())
	}
	var when string
	switch {
	case days == 0:
		when = "today"
	case days == 1:
		when = "tomorrow"
	case days < 7:
		when = weekdaysEN[opensAt.Weekday()]
	default:
		when = weekdaysEN[opensAt.Weekday()] + ", " + opensAt.Format("January 2")
	}
	return fmt.Sprintf("We open again %s at %s.", when, opensAt.Format("3:04 PM"))
}

// Location is the clinic's time zone.
func (h *BusinessHours) Location() *time.Location { return h.loc }

// ClinicLocation is the clinic's time zone (business_hours.time_zone), UTC if unset.
func ClinicLocation(cfg *config.BusinessHoursConfig) *time.Location {
	loc, err := cfg.Location()
	if err != nil || loc == nil {
		return time.UTC
	}
	return loc
}
