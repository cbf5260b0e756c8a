package appservice

import (
	"context"
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
	// RoomName is the room's name (the patient's name or label, with workflow marks); set
	// by Rooms.LookNow from NamePrefix.
	RoomName string
	// NamePrefix is the clinic workflow's mark before the patient's name (urgency).
	NamePrefix string
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

// PatientName is how rooms and the patient's ghost show the patient: the name staff gave,
// else the number as staff know it; only its last four digits when names are masked
// (privacy.mask_room_names).
func (r *Rooms) PatientName(ctx context.Context, e164 string) (string, error) {
	if r.Federation().MaskNames {
		return MaskedNumber(e164), nil
	}
	name, err := r.DB.Conversation.GetPatientName(ctx, e164)
	if err != nil {
		return "", fmt.Errorf("failed to read patient name: %w", err)
	} else if name == "" {
		name = r.FormatPhone(e164)
	}
	return name, nil
}

// LookNow is how a conversation's room looks now: in carries what the bridge and the
// clinic's workflow add (Through, NamePrefix, TopicSuffix); the name, the patient's label,
// the clinic and the link's expiry are decided here.
func (r *Rooms) LookNow(ctx context.Context, in LookInput) (Look, error) {
	name, err := r.PatientName(ctx, in.Conv.PatientPhone)
	if err != nil {
		return Look{}, err
	}
	in.RoomName = in.NamePrefix + name
	in.PatientLabel = r.Federation().PatientLabel(in.Conv.PatientPhone)
	in.ClinicName = r.Config.ClinicName
	// An upper bound: the newest link, if any was issued just now, expires then.
	if active, err := r.DB.Link.CountActive(ctx, in.Conv.LoginID, in.Conv.PortalID, time.Now()); err == nil && active > 0 {
		in.LinkExpires = time.Now().Add(r.Config.SecureChat.LinkLifetime)
	}
	return LookOf(in), nil
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
