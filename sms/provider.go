package sms

import "context"

// OutboundMessage is one text to a patient.
type OutboundMessage struct {
	From           string   // the clinic number, E.164
	To             string   // the patient, E.164
	Body           string   // may be empty when MediaURLs are given
	MediaURLs      []string // public URLs the provider fetches (MMS)
	StatusCallback string   // where delivery updates are posted; empty for none
}

// SentMessage is the provider's acceptance of an outbound message.
type SentMessage struct {
	SID    string
	Status string // e.g. "queued", "accepted"
}

// PhoneNumber is a number the provider account owns.
type PhoneNumber struct {
	SID          string
	E164         string
	FriendlyName string
	SMSURL       string
}

// Provider sends texts and manages the clinic numbers. Twilio implements it here; a
// stand-in for demos and tests may implement it outside this package.
type Provider interface {
	// CheckAccount is called when a clinic number is linked, to verify the credentials.
	CheckAccount(ctx context.Context) error
	// LookupNumber is called when a clinic number is linked and when the bridge starts,
	// to verify the account owns it. It returns ErrNumberNotOwned when it does not.
	LookupNumber(ctx context.Context, e164 string) (*PhoneNumber, error)
	// ConfigureWebhooks is called when a clinic number is linked: it points the number's
	// inbound SMS webhook at the bridge, so nobody pastes URLs into the Twilio console.
	ConfigureWebhooks(ctx context.Context, numberSID, smsURL string) error
	// Send is called for every staff message that goes out as a text. Refusals are *SendError.
	Send(ctx context.Context, msg *OutboundMessage) (*SentMessage, error)
}
