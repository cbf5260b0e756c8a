package workflow

import (
	"strings"
	"time"
)

// The after-hours reply: a patient who writes while the clinic is closed is told so once
// per closed period (the caller claims the period by its start), with when it opens again.

// DefaultAfterHoursReply is example-config.yaml's after_hours_reply. A clinic that kept it
// and set secure_chat.language to es gets the Spanish wording; a clinic that wrote its own
// reply gets its own words, in whatever language it wrote them.
const DefaultAfterHoursReply = "{clinic_name} is closed now. We will answer when we open. For emergencies call 911."

const afterHoursReplyES = "{clinic_name} está cerrado ahora. Le responderemos cuando abramos. Para emergencias llame al 911."

// AfterHours is the after-hours decision for a patient's text at one moment.
type AfterHours struct {
	// Closed is false while the clinic is open: no reply.
	Closed bool
	// ClosedSince names the closed period: one reply per period.
	ClosedSince time.Time
	// Template is the reply to the patient, its placeholders ({clinic_name}) not filled yet.
	Template string
	// OpensAgain ends the reply ("We open again Monday at 8:00 AM.", in the patient's
	// language); "" when the clinic does not open within a year.
	OpensAgain string
	// ForStaff is the same sentence in English, for the room's notice.
	ForStaff string
}

// AfterHours decides what a patient writing at now is told: nothing while open, else the
// configured reply (in lang) and when the clinic opens again.
func (h *BusinessHours) AfterHours(now time.Time, lang, configuredReply string) AfterHours {
	state := h.At(now)
	if state.Open {
		return AfterHours{}
	}
	template := configuredReply
	if lang == "es" && strings.TrimSpace(configuredReply) == DefaultAfterHoursReply {
		template = afterHoursReplyES
	}
	return AfterHours{
		Closed:      true,
		ClosedSince: state.ClosedSince,
		Template:    template,
		OpensAgain:  OpensAgainText(lang, now, state.OpensAt, h.loc),
		ForStaff:    OpensAgainText("en", now, state.OpensAt, h.loc),
	}
}
