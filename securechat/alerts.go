package securechat

import (
	"fmt"
	"time"

	"github.com/carebridge/carebridge/database"
)

// AlertPolicy decides when a patient is texted that secure messages wait for them: the
// first message gets an alert at once; one kept back by the quiet period gets its alert
// when the period ends, if still unread; messages still unread ReminderAfter after the
// last alert get one reminder. Nothing here reads a clock: callers pass now.
type AlertPolicy struct {
	Quiet         time.Duration // at most one alert per quiet period
	ReminderAfter time.Duration // 0: no reminder
}

// AlertAction is what to text the patient now.
type AlertAction int

// The actions of AlertPolicy.
const (
	AlertNone     AlertAction = iota // nothing (yet)
	AlertNow                         // the alert, with a fresh link
	AlertLater                       // the alert when the quiet period ends (see the time returned)
	AlertReminder                    // the one reminder that messages are still unread
)

// OnStaffMessage is what a staff message kept for the secure chat at now calls for.
func (p AlertPolicy) OnStaffMessage(conv *database.Conversation, now time.Time) (AlertAction, time.Time) {
	if conv.LastAlertAt.IsZero() || now.Sub(conv.LastAlertAt) >= p.Quiet {
		return AlertNow, now
	}
	return AlertLater, conv.LastAlertAt.Add(p.Quiet)
}

// Due is what a conversation calls for at now, when the alert loop looks at it; unread is
// whether staff messages wait unread.
func (p AlertPolicy) Due(conv *database.Conversation, unread bool, now time.Time) AlertAction {
	switch {
	case !unread:
		return AlertNone
	case !conv.AlertDueAt.IsZero() && !now.Before(conv.AlertDueAt):
		return AlertNow
	case p.ReminderAfter > 0 && !conv.LastAlertAt.IsZero() && conv.RemindedAt.Before(conv.LastAlertAt) &&
		!now.Before(conv.LastAlertAt.Add(p.ReminderAfter)):
		return AlertReminder
	}
	return AlertNone
}

// Language is the language of the texts to a patient: the one they chose on the pages,
// else the clinic's.
func Language(conv *database.Conversation, clinicLanguage string) string {
	if supportedLang(conv.PatientLanguage) {
		return conv.PatientLanguage
	}
	return clinicLanguage
}

// UnreadReminderText tells the patient secure messages still wait, with a fresh link.
func UnreadReminderText(lang, clinic, link string) string {
	if lang == langSpanish {
		return fmt.Sprintf("%s: recuerde que tiene mensajes seguros sin leer. Ábralos aquí: %s", clinic, link)
	}
	return fmt.Sprintf("%s: a reminder that secure messages are waiting for you. Open them here: %s", clinic, link)
}
