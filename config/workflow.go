package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
)

// TeamConfig is a group of staff answering some clinic numbers: new conversations on
// those numbers invite its members and go into its Matrix space.
type TeamConfig struct {
	Name    string   `yaml:"name"`
	Members []string `yaml:"members"`
	// Numbers are the clinic numbers (E.164) the team answers; empty means every number.
	Numbers []string `yaml:"numbers"`
}

// EmergencyConfig is the immediate answer to a patient text that sounds like an emergency.
type EmergencyConfig struct {
	Reply   string   `yaml:"reply"`
	Phrases []string `yaml:"phrases"`
}

// BusinessHoursConfig says when the clinic answers; outside them a patient text gets
// the after-hours reply (once per closed period) and the on-call staff are mentioned.
type BusinessHoursConfig struct {
	// TimeZone is an IANA zone name such as America/New_York.
	TimeZone string `yaml:"time_zone"`
	// Weekly maps mon..sun to "HH:MM-HH:MM" (several ranges separated by commas), or "closed".
	Weekly map[string]string `yaml:"weekly"`
	// Holidays are closed dates (YYYY-MM-DD) in the time zone.
	Holidays []string `yaml:"holidays"`
	// AfterHoursReply is texted outside business hours ({clinic_name} is replaced).
	AfterHoursReply string `yaml:"after_hours_reply"`
}

// WorkflowConfig holds the clinic workflow options of the network section.
type WorkflowConfig struct {
	Teams         []TeamConfig        `yaml:"teams"`
	OnCall        []string            `yaml:"on_call"`
	Emergency     EmergencyConfig     `yaml:"emergency"`
	BusinessHours BusinessHoursConfig `yaml:"business_hours"`
	// Templates map a name to a quick reply with {patient_name}, {clinic_name}, {link}.
	Templates map[string]string `yaml:"templates"`
}

// Weekdays are the keys of business_hours.weekly, Sunday first as time.Weekday counts.
var Weekdays = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

var (
	hoursRange   = regexp.MustCompile(`^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$`)
	templateName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	placeholder  = regexp.MustCompile(`\{[a-z_]+\}`)
)

// OpenRange is one span of opening hours within a day, in minutes after midnight.
type OpenRange struct{ From, To int }

// ParseHours reads one day's "HH:MM-HH:MM[, …]" or "closed".
func ParseHours(raw string) ([]OpenRange, error) {
	raw = strings.TrimSpace(strings.ToLower(raw))
	if raw == "" || raw == "closed" {
		return nil, nil
	}
	var out []OpenRange
	for _, part := range strings.Split(raw, ",") {
		m := hoursRange.FindStringSubmatch(strings.TrimSpace(part))
		if m == nil {
			return nil, fmt.Errorf("%q is not HH:MM-HH:MM", strings.TrimSpace(part))
		}
		var h1, m1, h2, m2 int
		fmt.Sscanf(m[1]+" "+m[2]+" "+m[3]+" "+m[4], "%d %d %d %d", &h1, &m1, &h2, &m2)
		r := OpenRange{From: h1*60 + m1, To: h2*60 + m2}
		if r.To <= r.From || r.To > 24*60 {
			return nil, fmt.Errorf("%q ends before it starts", strings.TrimSpace(part))
		}
		out = append(out, r)
	}
	return out, nil
}

// Location returns the business hours' time zone (UTC when none is set).
func (b *BusinessHoursConfig) Location() (*time.Location, error) {
	if b.TimeZone == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(b.TimeZone)
}

func validMXID(mxid string) bool {
	localpart, _, err := id.UserID(mxid).ParseAndValidateRelaxed()
	return err == nil && localpart != ""
}

func (w *WorkflowConfig) validate() error {
	seen := map[string]bool{}
	for i, team := range w.Teams {
		key := fmt.Sprintf("teams[%d]", i)
		name := strings.TrimSpace(team.Name)
		switch {
		case name == "":
			return invalid(key+".name", "is empty: give the team a name staff recognise, e.g. Triage")
		case seen[strings.ToLower(name)]:
			return invalid(key+".name", fmt.Sprintf("%q is used twice: team names must differ", name))
		case len(team.Members) == 0:
			return invalid(key+".members", "is empty: list the team's Matrix IDs")
		}
		seen[strings.ToLower(name)] = true
		for j, mxid := range team.Members {
			if !validMXID(mxid) {
				return invalid(fmt.Sprintf("%s.members[%d]", key, j), fmt.Sprintf("is %q: write a full Matrix ID such as @nurse:clinic.example", mxid))
			}
		}
		for j, number := range team.Numbers {
			if !regexp.MustCompile(`^\+[1-9]\d{6,14}$`).MatchString(number) {
				return invalid(fmt.Sprintf("%s.numbers[%d]", key, j), fmt.Sprintf("is %q: write the clinic number in E.164 form, e.g. +15550001111", number))
			}
		}
	}
	for i, mxid := range w.OnCall {
		if !validMXID(mxid) {
			return invalid(fmt.Sprintf("on_call[%d]", i), fmt.Sprintf("is %q: write a full Matrix ID such as @oncall:clinic.example", mxid))
		}
	}
	if len(w.Emergency.Phrases) > 0 && strings.TrimSpace(w.Emergency.Reply) == "" {
		return invalid("emergency.reply", "is empty: patients whose text matches an emergency phrase must be told to call 911")
	}
	for i, p := range w.Emergency.Phrases {
		if len(strings.TrimSpace(p)) < 3 {
			return invalid(fmt.Sprintf("emergency.phrases[%d]", i), fmt.Sprintf("is %q: a phrase needs at least 3 characters", p))
		}
	}
	bh := &w.BusinessHours
	if _, err := bh.Location(); err != nil {
		return invalid("business_hours.time_zone", fmt.Sprintf("is %q: use an IANA zone such as America/New_York", bh.TimeZone))
	}
	for day, hours := range bh.Weekly {
		known := false
		for _, d := range Weekdays {
			known = known || d == day
		}
		if !known {
			return invalid("business_hours.weekly."+day, "is not a day: use mon, tue, wed, thu, fri, sat, sun")
		}
		if _, err := ParseHours(hours); err != nil {
			return invalid("business_hours.weekly."+day, err.Error()+`: write e.g. "08:00-12:00, 13:00-17:00" or "closed"`)
		}
	}
	for i, d := range bh.Holidays {
		if _, err := time.Parse("2006-01-02", d); err != nil {
			return invalid(fmt.Sprintf("business_hours.holidays[%d]", i), fmt.Sprintf("is %q: write dates as YYYY-MM-DD", d))
		}
	}
	if len(bh.Weekly) > 0 && strings.TrimSpace(bh.AfterHoursReply) == "" {
		return invalid("business_hours.after_hours_reply", "is empty: patients who text after hours must be told when the clinic answers")
	}
	for name, text := range w.Templates {
		if !templateName.MatchString(name) {
			return invalid("templates."+name, "is not a usable name: use lower-case letters, digits, - and _ (up to 32)")
		}
		if strings.TrimSpace(text) == "" {
			return invalid("templates."+name, "is empty")
		}
		for _, ph := range placeholder.FindAllString(text, -1) {
			if ph != "{patient_name}" && ph != "{clinic_name}" && ph != "{link}" {
				return invalid("templates."+name, fmt.Sprintf("uses %s: the placeholders are {patient_name}, {clinic_name} and {link}", ph))
			}
		}
	}
	return nil
}
