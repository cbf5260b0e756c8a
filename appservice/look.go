package appservice

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

// How a conversation room looks. Names and topics are not end-to-end encrypted: they
// reach every server in the room, so they show the patient only as the caller labels
// them (MaskedNumber under privacy.mask_room_names). The bridge applies a Look through
// bridgev2's ChatInfo, so that the portal's stored name and topic stay what the room shows.

// StateConversation is the room state event that shows a conversation's mode to clients.
var StateConversation = event.Type{Type: "com.carebridge.conversation", Class: event.StateEventType}

// ConversationState is the content of StateConversation.
type ConversationState struct {
	Mode        database.Mode `json:"mode"`
	Verified    bool          `json:"verified"`
	LinkExpires int64         `json:"link_expires,omitempty"` // unix ms of the newest link's expiry
	// Assignee is the Matrix ID of the staff member who owns the conversation, if any.
	Assignee string `json:"assignee,omitempty"`
	Urgent   bool   `json:"urgent"`
	Closed   bool   `json:"closed"`
}

// Look is what a conversation room shows: its name, topic and conversation state.
type Look struct {
	Name  string
	Topic string
	State *ConversationState
}

// LookInput is what a room's look is made of.
type LookInput struct {
	Conv *database.Conversation
	// RoomName is the room's name (the patient's name or label, with workflow marks).
	RoomName string
	// PatientLabel is the patient as the topic shows them (formatted or masked number).
	PatientLabel string
	// Through is the clinic number the conversation is on, as staff know it ("" to leave out).
	Through    string
	ClinicName string
	// TopicSuffix is what the clinic's workflow adds to the topic (owner, urgency, closed).
	TopicSuffix string
	// LinkExpires is when the newest secure link expires (zero: no active link).
	LinkExpires time.Time
}

// LookOf is the room's look for a conversation.
func LookOf(in LookInput) Look {
	conv := in.Conv
	state := &ConversationState{Mode: conv.Mode, Assignee: conv.Assignee, Urgent: conv.Urgent, Closed: !conv.ClosedAt.IsZero()}
	if !in.LinkExpires.IsZero() {
		state.LinkExpires = in.LinkExpires.UnixMilli()
	}
	modeWord := "SMS"
	if conv.Mode == database.ModeSecure {
		modeWord = "🔒 secure"
	}
	through := ""
	if in.Through != "" {
		through = " through " + in.Through
	}
	topic := fmt.Sprintf("%s conversation with %s%s (%s)", modeWord, in.PatientLabel, through, in.ClinicName) + in.TopicSuffix
	return Look{Name: in.RoomName, Topic: topic, State: state}
}

// MaskedNumber is how a masked room shows a patient: the last four digits only.
func MaskedNumber(e164 string) string {
	digits := strings.TrimPrefix(e164, "+")
	if len(digits) > 4 {
		digits = digits[len(digits)-4:]
	}
	return "Patient …" + digits
}

// ServerACL is the m.room.server_acl of conversation rooms: the homeserver and the
// allowed servers. IP literals are allowed only when a listed server is one (a test set-up
// on loopback; real servers have names).
func ServerACL(hosts []string) *event.ServerACLEventContent {
	return &event.ServerACLEventContent{Allow: hosts, Deny: []string{}, AllowIPLiterals: slices.ContainsFunc(hosts, config.IsIPLiteral)}
}

// PatientNotice is the pinned, end-to-end encrypted notice that says who the patient is
// when the room's name shows only the last four digits. who is the name and number.
func PatientNotice(who string) string {
	return fmt.Sprintf("📌 Patient: %s. The room's name and topic show only the last four digits "+
		"(privacy.mask_room_names), because they are not end-to-end encrypted.", who)
}
