package outbox

// Kind is what a text to a patient is; it is stored with the text and says, in a failure
// notice, what was not sent.
type Kind string

// The kinds of text the bridge sends.
const (
	KindStaffReply   Kind = "staff_reply"   // a staff member's message in the room (text or MMS)
	KindAlert        Kind = "alert"         // "you have a new secure message" with a link
	KindCode         Kind = "code"          // a one-time code for the secure chat (never stored)
	KindTemplate     Kind = "template"      // a quick reply staff picked (`!sms t`)
	KindFollowUp     Kind = "follow_up"     // a scheduled message (`!sms later`)
	KindAutoReply    Kind = "auto_reply"    // after-hours or emergency reply
	KindKeywordReply Kind = "keyword_reply" // the answer to STOP, START or HELP
	KindReminder     Kind = "reminder"      // "replies come through the secure link"
	KindAPI          Kind = "api"           // a message an integration sent
)

// Words names the kind in a notice to staff ("The secure message alert was not sent: …").
func (k Kind) Words() string {
	switch k {
	case KindStaffReply:
		return "text"
	case KindAlert:
		return "secure message alert"
	case KindCode:
		return "one-time code"
	case KindTemplate:
		return "quick reply"
	case KindFollowUp:
		return "scheduled message"
	case KindAutoReply:
		return "automatic reply"
	case KindKeywordReply:
		return "answer to the patient's keyword"
	case KindReminder:
		return "secure link reminder"
	case KindAPI:
		return "integration's message"
	}
	return "text"
}
