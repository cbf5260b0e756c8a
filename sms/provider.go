package sms

import (
	"context"
	"time"
)

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
	SID            string
	E164           string
	FriendlyName   string
	SMSURL         string
	SMSFallbackURL string
}

// NumberWebhooks are where the provider calls when a number receives a text.
type NumberWebhooks struct {
	// SMSURL is the inbound webhook (Twilio's SmsUrl), with its connection overrides.
	SMSURL string
	// SMSFallbackURL is called when SMSURL failed (Twilio's SmsFallbackUrl); empty for none.
	SMSFallbackURL string
}

// Provider sends texts and manages the clinic numbers. Twilio implements it here; a
// stand-in for demos and tests may implement it outside this package.
type Provider interface {
	// CheckAccount is called when a clinic number is linked, to verify the credentials.
	CheckAccount(ctx context.Context) error
	// LookupNumber is called when a clinic number is linked and when the bridge starts,
	// to verify the account owns it. It returns ErrNumberNotOwned when it does not.
	LookupNumber(ctx context.Context, e164 string) (*PhoneNumber, error)
	// ConfigureWebhooks is called when a clinic number is linked, and when the bridge
	// starts and finds them changed: it points the number's inbound SMS webhook (and its
	// fallback) at the bridge, so nobody pastes URLs into the Twilio console.
	ConfigureWebhooks(ctx context.Context, numberSID string, hooks NumberWebhooks) error
	// Send is called for every staff message that goes out as a text. Refusals are *SendError.
	Send(ctx context.Context, msg *OutboundMessage) (*SentMessage, error)
	// ListInbound is called when the bridge starts, after a gap it saw (a webhook it
	// answered with an error, a number linked again) and now and then: it returns the
	// messages the number `to` received that were sent at or after since, oldest first,
	// with their media, so that texts whose webhook never reached the bridge are found.
	ListInbound(ctx context.Context, to string, since time.Time) ([]*LoggedMessage, error)
	// FetchMessage is called for a text the bridge sent whose final status never arrived
	// (the bridge was down or failed the status callback). It returns ErrMessageNotFound
	// when the account has no such message.
	FetchMessage(ctx context.Context, sid string) (*LoggedMessage, error)
	// ListSent is called for a text a stopped process was sending when it stopped, whose
	// answer from Twilio was never recorded: it returns the messages sent from `from` to
	// `to` created at or after since (the newest SentLookback of them), oldest first, so
	// that a text Twilio accepted is recorded and not sent twice.
	ListSent(ctx context.Context, from, to string, since time.Time) ([]*LoggedMessage, error)
}
