package database

import (
	"database/sql/driver"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"
)

// The audit log's vocabulary: what happened (AuditEvent), how it ended (AuditOutcome)
// and who did it (AuditActor). The strings are what is stored, hashed into the chain and
// exported, so a constant's string never changes once rows carry it.

// AuditEvent names what happened.
type AuditEvent string

// Events of a conversation's secure chat (securechat/).
const (
	EventLinkIssued           AuditEvent = "link issued"
	EventLinkRevoked          AuditEvent = "link revoked"
	EventLinkOpened           AuditEvent = "link opened"
	EventLinkExpired          AuditEvent = "link expired"
	EventCodeUnlocked         AuditEvent = "code unlocked"
	EventCodeIssued           AuditEvent = "code issued"
	EventCodeSent             AuditEvent = "code sent"
	EventCodeFailed           AuditEvent = "code failed"
	EventCodeLocked           AuditEvent = "code locked"
	EventCodeVerified         AuditEvent = "code verified"
	EventDOBRecorded          AuditEvent = "dob recorded"
	EventSessionStarted       AuditEvent = "session started"
	EventSessionTimedOut      AuditEvent = "session timed out"
	EventSessionEnded         AuditEvent = "session ended"
	EventSecureMessageStored  AuditEvent = "message stored for secure chat"
	EventMessagesRead         AuditEvent = "messages read"
	EventAttachmentDownloaded AuditEvent = "attachment downloaded"
)

// Events of a conversation (conversation/, bridge/).
const (
	// EventMessageSent is a message from the patient in the secure chat, or a text the
	// integration API sent.
	EventMessageSent         AuditEvent = "message sent"
	EventModeSwitched        AuditEvent = "mode switched"
	EventPatientNamed        AuditEvent = "patient named"
	EventConversationStarted AuditEvent = "conversation started"
	EventOptedOut            AuditEvent = "opted out"
	EventOptedIn             AuditEvent = "opted in"
	EventReopened            AuditEvent = "reopened"
	EventClosed              AuditEvent = "closed"
	EventMarkedUrgent        AuditEvent = "marked urgent"
	EventMarkedRoutine       AuditEvent = "marked routine"
	EventAssigned            AuditEvent = "assigned"
	EventUnassigned          AuditEvent = "unassigned"
	EventFollowUpScheduled   AuditEvent = "follow-up scheduled"
	EventFollowUpCancelled   AuditEvent = "follow-up cancelled"
	EventFollowUpSent        AuditEvent = "follow-up sent"
	EventTemplateSent        AuditEvent = "template sent"
	EventAlertSent           AuditEvent = "alert sent"
	EventReminderSent        AuditEvent = "reminder sent"
	EventEmergencyReplySent  AuditEvent = "emergency reply sent"
	EventAfterHoursReplySent AuditEvent = "after-hours reply sent"
	EventReferred            AuditEvent = "referred"
	EventReferralRefused     AuditEvent = "referral refused"
	EventMemberRemoved       AuditEvent = "member removed"
	EventLoginAdded          AuditEvent = "login added"
	EventLoginRemoved        AuditEvent = "login removed"
	EventAPICall             AuditEvent = "api call"
	EventAPICallsRefused     AuditEvent = "api calls refused"
	EventDataPurged          AuditEvent = "data purged"
	EventKeysRotated         AuditEvent = "keys rotated"
	EventAuditExported       AuditEvent = "audit exported"
)

// AuditOutcome is how an audited action ended.
type AuditOutcome string

// Outcomes. OutcomeOK is the usual one; the others say why not.
const (
	OutcomeOK         AuditOutcome = "ok"
	OutcomeRefused    AuditOutcome = "refused"
	OutcomeFailed     AuditOutcome = "failed"
	OutcomeIncomplete AuditOutcome = "incomplete"
	// OutcomeUnknown: the action may or may not have happened (a crash during a send).
	OutcomeUnknown     AuditOutcome = "unknown"
	OutcomeRateLimited AuditOutcome = "rate limited"
	OutcomeOptedOut    AuditOutcome = "opted out"
	OutcomeExpired     AuditOutcome = "expired"
	// OutcomeOpenedExpired: a link opened after it expired.
	OutcomeOpenedExpired AuditOutcome = "opened after expiry"
	OutcomeRevoked       AuditOutcome = "revoked"
	OutcomeLocked        AuditOutcome = "locked"
	OutcomeWrong         AuditOutcome = "wrong"
	OutcomeEnded         AuditOutcome = "ended"
	OutcomeSignedOut     AuditOutcome = "signed out"
)

// ActorKind is what kind of party an AuditActor is.
type ActorKind string

// Kinds of actors, with the form each is stored in.
const (
	// ActorStaff is a person in Matrix, stored as their Matrix ID ("@nurse:clinic.example").
	ActorStaff ActorKind = "staff"
	// ActorIntegration is an integration of the API, stored as "integration:<name>".
	ActorIntegration ActorKind = "integration"
	// ActorSystem is the bridge itself ("system") or one of its tools ("system:cli:<user>").
	ActorSystem ActorKind = "system"
	// ActorPatient is the patient: "patient", by a channel ("patient:sms", "patient:link")
	// or by a secure chat session ("patient:<prefix of its keyed hash>").
	ActorPatient ActorKind = "patient"
	// ActorUnauthenticated is a caller of the API without a token the bridge knows.
	ActorUnauthenticated ActorKind = "unauthenticated"
	// ActorOther is a stored actor of none of these forms; it is kept as it was.
	ActorOther ActorKind = ""
)

// AuditActor is who did an audited action. Make one with the constructors; the stored
// form is String, and ParseAuditActor reads it back.
type AuditActor struct {
	Kind ActorKind
	// Name is the Matrix ID (staff), the integration's name, the tool of the system
	// ("" for the bridge itself, "cli:<user>"), the patient's channel or session ("" for
	// the patient alone), or the whole stored string (ActorOther).
	Name string
}

// Actors without a name of their own.
var (
	// SystemActor is the bridge acting on its own (alerts, automatic replies, purges).
	SystemActor = AuditActor{Kind: ActorSystem}
	// PatientActor is the patient, by whatever channel (a text reopening a conversation).
	PatientActor = AuditActor{Kind: ActorPatient}
	// PatientSMSActor is the patient by SMS (STOP, START).
	PatientSMSActor = AuditActor{Kind: ActorPatient, Name: "sms"}
	// PatientLinkActor is whoever holds a secure link, before a code proves who they are.
	PatientLinkActor = AuditActor{Kind: ActorPatient, Name: "link"}
	// UnauthenticatedActor is a caller of the integration API without a known token.
	UnauthenticatedActor = AuditActor{Kind: ActorUnauthenticated}
)

// StaffActor is a staff member, by Matrix ID.
func StaffActor(mxid id.UserID) AuditActor { return AuditActor{Kind: ActorStaff, Name: string(mxid)} }

// IntegrationActor is an integration of the API, by its configured name.
func IntegrationActor(name string) AuditActor { return AuditActor{Kind: ActorIntegration, Name: name} }

// CLIActor is a carebridge subcommand run by an operator (their login name).
func CLIActor(user string) AuditActor { return AuditActor{Kind: ActorSystem, Name: "cli:" + user} }

// PatientSessionActor is a patient's secure chat session, named by a prefix of its keyed
// hash (never the session ID itself).
func PatientSessionActor(sessionHash string) AuditActor {
	return AuditActor{Kind: ActorPatient, Name: sessionHash[:min(12, len(sessionHash))]}
}

// String is the actor as stored.
func (a AuditActor) String() string {
	switch a.Kind {
	case ActorStaff, ActorOther:
		return a.Name
	case ActorUnauthenticated:
		return string(ActorUnauthenticated)
	default:
		if a.Name == "" && a.Kind != ActorIntegration {
			return string(a.Kind)
		}
		return string(a.Kind) + ":" + a.Name
	}
}

// IsZero is true for the zero AuditActor (no actor).
func (a AuditActor) IsZero() bool { return a == AuditActor{} }

// MXID is the staff member's Matrix ID ("" for other actors).
func (a AuditActor) MXID() id.UserID {
	if a.Kind != ActorStaff {
		return ""
	}
	return id.UserID(a.Name)
}

// ParseAuditActor reads an actor as stored. Every string reads back to itself:
// ParseAuditActor(s).String() == s, so rows keep their hashes.
func ParseAuditActor(s string) AuditActor {
	if strings.HasPrefix(s, "@") {
		return AuditActor{Kind: ActorStaff, Name: s}
	}
	if s == string(ActorUnauthenticated) {
		return UnauthenticatedActor
	}
	kind, name, named := strings.Cut(s, ":")
	switch ActorKind(kind) {
	case ActorSystem, ActorPatient:
		if !named {
			return AuditActor{Kind: ActorKind(kind)}
		} else if name != "" {
			return AuditActor{Kind: ActorKind(kind), Name: name}
		}
	case ActorIntegration:
		if named && name != "" {
			return IntegrationActor(name)
		}
	}
	return AuditActor{Kind: ActorOther, Name: s}
}

// MarshalText writes the stored form (JSON exports show the actor as a string).
func (a AuditActor) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads the stored form.
func (a *AuditActor) UnmarshalText(text []byte) error {
	*a = ParseAuditActor(string(text))
	return nil
}

// Value stores the actor as text.
func (a AuditActor) Value() (driver.Value, error) { return a.String(), nil }

// Scan reads the stored form.
func (a *AuditActor) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*a = ParseAuditActor(v)
	case []byte:
		*a = ParseAuditActor(string(v))
	default:
		return fmt.Errorf("an audit actor is text, not %T", src)
	}
	return nil
}
