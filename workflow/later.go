package workflow

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/carebridge/carebridge/database"
)

// `!sms later` specs: staff write when a follow-up goes, as a delay ("3d", "2h", "90m",
// "1d12h") or a date and time in the clinic's zone ("2026-12-01 09:00"), then its text.

const (
	// laterMaxAheadYears is how far ahead a message may be scheduled.
	laterMaxAheadYears = 1
	// laterTimeLayout is how staff write a date and time, laterShowLayout how it is shown.
	laterTimeLayout = "2006-01-02 15:04"
	laterShowLayout = "Mon 2 Jan 2006, 15:04 MST"
)

var (
	delayPattern = regexp.MustCompile(`^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$`)
	datePattern  = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

// LaterUsage is the help for `!sms later`.
const LaterUsage = "Usage: `$cmdprefix later 2026-12-01 09:00 <text>` (clinic time) or `$cmdprefix later 3d <text>` " +
	"(also 2h, 90m, 1d12h); `$cmdprefix later` lists this conversation's scheduled messages, " +
	"`$cmdprefix later cancel 3` cancels one."

// ErrLaterUsage means the command did not have the shape of a schedule.
var ErrLaterUsage = errors.New(LaterUsage)

// CutWord splits s into its first word and the rest, trimmed on the left.
func CutWord(s string) (word, rest string) {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		return s[:i], strings.TrimLeftFunc(s[i:], unicode.IsSpace)
	}
	return s, ""
}

// ParseLater reads "<YYYY-MM-DD HH:MM> text" (in loc) or "<delay> text" and returns when to
// send the text. The errors are sentences for staff.
func ParseLater(args string, now time.Time, loc *time.Location) (sendAt time.Time, text string, err error) {
	now = now.In(loc)
	first, rest := CutWord(args)
	switch {
	case datePattern.MatchString(first):
		clock, body := CutWord(rest)
		sendAt, err = time.ParseInLocation(laterTimeLayout, first+" "+clock, loc)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("%q is not a date and time like 2026-12-01 09:00 (24-hour clock, clinic time)", first+" "+clock)
		}
		if !sendAt.After(now) {
			return time.Time{}, "", fmt.Errorf("%s has already passed (it is now %s, clinic time)",
				sendAt.Format(laterShowLayout), now.Format(laterShowLayout))
		}
		text = body
	case strings.HasPrefix(first, "-") && delayPattern.MatchString(first[1:]) && first != "-":
		return time.Time{}, "", errors.New("a message cannot be scheduled in the past: use a delay such as 3d, 2h or 90m")
	default:
		m := delayPattern.FindStringSubmatch(first)
		if m == nil || first == "" {
			return time.Time{}, "", ErrLaterUsage
		}
		days, _ := strconv.Atoi(m[1])
		hours, _ := strconv.Atoi(m[2])
		minutes, _ := strconv.Atoi(m[3])
		if days > 366*laterMaxAheadYears || hours > 24*366*laterMaxAheadYears || minutes > 60*24*366*laterMaxAheadYears {
			return time.Time{}, "", fmt.Errorf("%s is more than a year ahead", first)
		}
		// Days are calendar days in the clinic's zone: 3d at 09:00 is 09:00, across a DST change too.
		sendAt = now.AddDate(0, 0, days).Add(time.Duration(hours)*time.Hour + time.Duration(minutes)*time.Minute)
		if !sendAt.After(now) {
			return time.Time{}, "", fmt.Errorf("%s is no delay: use one such as 3d, 2h or 90m", first)
		}
		text = rest
	}
	if sendAt.After(now.AddDate(laterMaxAheadYears, 0, 0)) {
		return time.Time{}, "", fmt.Errorf("%s is more than a year ahead: schedule messages at most a year in advance",
			sendAt.Format(laterShowLayout))
	}
	if text = strings.TrimSpace(text); text == "" {
		return time.Time{}, "", errors.New("the message is missing: write it after the time, e.g. `$cmdprefix later 3d How is your knee today?`")
	}
	return sendAt, text, nil
}

// LaterTime shows when a scheduled message goes, in the clinic's zone ("Tue 1 Dec 2026, 09:00 EST").
func LaterTime(sendAt time.Time, loc *time.Location) string {
	return sendAt.In(loc).Format(laterShowLayout)
}

// LaterScheduled is the answer to a scheduled message. now is the moment the spec was read
// at, so that "1m" is shown as "in 1m", not as the minute minus the time taken to store it.
func LaterScheduled(id int64, sendAt, now time.Time, loc *time.Location) string {
	return fmt.Sprintf("Scheduled message %d will be sent %s (in %s), by the conversation's mode at that time "+
		"(SMS, or the secure chat). Cancel it with `$cmdprefix later cancel %d`.", id, LaterTime(sendAt, loc),
		FormatWait(sendAt.Sub(now)), id)
}

// laterPreviewRunes is how much of each text LaterList shows.
const laterPreviewRunes = 60

// LaterEntry is one pending message of LaterList: its text, or why it cannot be opened.
type LaterEntry struct {
	Message    *database.ScheduledMessage
	Text       string
	Unreadable string
}

// LaterList is the answer to `!sms later`: the pending messages, each with its number, when
// it goes (clinic time), who wrote it and the start of its text.
func LaterList(pending []LaterEntry, loc *time.Location) string {
	var b strings.Builder
	b.WriteString("Scheduled messages of this conversation (clinic time):\n\n")
	for _, e := range pending {
		preview := PreviewText(e.Text, laterPreviewRunes)
		if e.Unreadable != "" {
			preview = "(cannot be opened: " + e.Unreadable + ")"
		}
		m := e.Message
		fmt.Fprintf(&b, "* %d · %s · %s · %s\n", m.ID, LaterTime(m.SendAt, loc), m.CreatedBy, preview)
	}
	b.WriteString("\nCancel one with `$cmdprefix later cancel <number>`.")
	return b.String()
}

// PreviewText is the first n characters of text on one line.
func PreviewText(text string, n int) string {
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) <= n {
		return text
	}
	return string([]rune(text)[:n]) + "…"
}

// DescribeScheduledState says why a scheduled message can no longer be cancelled.
func DescribeScheduledState(state database.ScheduledState) string {
	switch state {
	case database.ScheduledSending:
		return "being sent right now"
	case database.ScheduledSent:
		return "already sent"
	case database.ScheduledCancelled:
		return "already cancelled"
	case database.ScheduledFailed:
		return "a message that could not be sent"
	}
	return string(state)
}
