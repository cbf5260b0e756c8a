package twiliosim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/carebridge/carebridge/sms"
)

// The shapes of a Twilio account SID (as in every webhook) and auth token.
var (
	accountSIDPattern   = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
	simAuthTokenPattern = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

// Account is the simulator as one set of credentials sees it: the texts and
// numbers are shared with the Simulator, and the account's SID is the AccountSid of the
// webhooks for the clinic numbers it links. The bridge makes one per linked clinic number,
// as it makes one Twilio client per number.
type Account struct {
	sim        *Simulator
	accountSID string
	authToken  string
}

var (
	_ sms.Provider = (*Simulator)(nil)
	_ sms.Provider = (*Account)(nil)
)

// Account returns the simulator as the account with these credentials. Nothing is checked
// here: CheckAccount does, and accepts any well-formed pair.
func (s *Simulator) Account(accountSID, authToken string) *Account {
	return &Account{sim: s, accountSID: accountSID, authToken: authToken}
}

func (s *Simulator) demoAccount() *Account {
	return s.Account(DemoAccountSID, DemoAuthToken)
}

// CheckAccount is called when a clinic number is linked. The demo account's credentials
// are always well-formed.
func (s *Simulator) CheckAccount(ctx context.Context) error {
	return s.demoAccount().CheckAccount(ctx)
}

// LookupNumber is called when a clinic number is linked and when the bridge starts: the
// demo account owns every E.164 number.
func (s *Simulator) LookupNumber(ctx context.Context, e164 string) (*sms.PhoneNumber, error) {
	return s.demoAccount().LookupNumber(ctx, e164)
}

// ConfigureWebhooks is called when a clinic number is linked: it records the webhook URL.
func (s *Simulator) ConfigureWebhooks(ctx context.Context, numberSID string, hooks sms.NumberWebhooks) error {
	return s.demoAccount().ConfigureWebhooks(ctx, numberSID, hooks)
}

// ListInbound is called when the bridge catches up on texts its webhook missed.
func (s *Simulator) ListInbound(ctx context.Context, to string, since time.Time) ([]*sms.LoggedMessage, error) {
	return s.demoAccount().ListInbound(ctx, to, since)
}

// FetchMessage is called for a text whose final status never reached the bridge.
func (s *Simulator) FetchMessage(ctx context.Context, sid string) (*sms.LoggedMessage, error) {
	return s.demoAccount().FetchMessage(ctx, sid)
}

// ListSent is called for a text a stopped bridge was sending when it stopped.
func (s *Simulator) ListSent(ctx context.Context, from, to string, since time.Time) ([]*sms.LoggedMessage, error) {
	return s.demoAccount().ListSent(ctx, from, to, since)
}

// Send is called for every staff message that goes out as a text: it lands in the
// patient number's simulated inbox.
func (s *Simulator) Send(ctx context.Context, msg *sms.OutboundMessage) (*sms.SentMessage, error) {
	return s.demoAccount().Send(ctx, msg)
}

// CheckAccount is called when a clinic number is linked. The simulator has no real
// accounts and trusts everything: any account SID of Twilio's shape (AC and 32 lower-case
// hex digits, as in every webhook) with a 32-hex-digit token passes.
func (a *Account) CheckAccount(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !accountSIDPattern.MatchString(a.accountSID) || !simAuthTokenPattern.MatchString(a.authToken) {
		return sms.ErrBadCredentials
	}
	return nil
}

// LookupNumber is called when a clinic number is linked and when the bridge starts. Every
// account owns every E.164 number, under a SID that is the same on every call and every
// run, so a restarted demo finds its numbers again.
func (a *Account) LookupNumber(ctx context.Context, e164 string) (*sms.PhoneNumber, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !e164Pattern.MatchString(e164) {
		return nil, fmt.Errorf("%w: %q is not an E.164 number", sms.ErrNumberNotOwned, truncate(e164, 20))
	}
	sum := sha256.Sum256([]byte("carebridge simulator\x00" + a.accountSID + "\x00" + e164))
	sid := "PN" + hex.EncodeToString(sum[:16])

	s := a.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	num := s.numbers[sid]
	if num == nil {
		num = &simNumber{sid: sid, e164: e164, accountSID: a.accountSID}
		s.numbers[sid] = num
	}
	// The token can change when a number is linked again with new credentials.
	num.authToken = a.authToken
	if s.clinics[e164] == nil {
		s.clinics[e164] = num
	}
	s.lastClinic = e164
	return &sms.PhoneNumber{SID: sid, E164: e164, FriendlyName: "Simulated " + e164, SMSURL: num.smsURL,
		SMSFallbackURL: num.smsFallbackURL}, nil
}

// ConfigureWebhooks is called when a clinic number is linked. It records the webhook URLs
// (PostWebhook calls the first; the simulator has no outage to fall back from) and makes
// this account the one the number's texts are for.
func (a *Account) ConfigureWebhooks(ctx context.Context, numberSID string, hooks sms.NumberWebhooks) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, hook := range []string{hooks.SMSURL, hooks.SMSFallbackURL} {
		if u, err := url.Parse(hook); hook == hooks.SMSURL && hook == "" || hook != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			return fmt.Errorf("%w: the SMS webhook %q is not an absolute http(s) URL", sms.ErrTwilioRejection, truncate(hook, 200))
		}
	}
	s := a.sim
	s.mu.Lock()
	defer s.mu.Unlock()
	num := s.numbers[numberSID]
	if num == nil || num.accountSID != a.accountSID {
		// Twilio answers 404 for a number SID the account does not have.
		return &sms.SendError{Code: 20404, Status: http.StatusNotFound,
			Err: fmt.Errorf("%w: the account has no number %s (look it up first)", sms.ErrTwilioRejection, truncate(numberSID, 40))}
	}
	num.smsURL, num.smsFallbackURL = hooks.SMSURL, hooks.SMSFallbackURL
	num.authToken = a.authToken
	s.clinics[num.e164] = num
	s.lastClinic = num.e164
	return nil
}

// Send is called for every text the bridge sends. It refuses what Twilio refuses, with
// Twilio's codes, and otherwise puts the text in the patient number's inbox, "queued",
// and reports its delivery to the StatusCallback as Twilio does (see FailNumber for
// texts that are not delivered). Opt-outs are not enforced here (the bridge enforces
// them), and From may be any E.164 number, as the simulator trusts everything.
func (a *Account) Send(ctx context.Context, msg *sms.OutboundMessage) (*sms.SentMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, &sms.SendError{NotSent: true, Err: err}
	}
	if err := validateSimulatedSend(msg); err != nil {
		return nil, err
	}
	prefix := "SM"
	if len(msg.MediaURLs) > 0 {
		prefix = "MM"
	}
	text := Text{
		SID:            newSimulatedSID(prefix),
		From:           msg.From,
		To:             msg.To,
		Body:           msg.Body,
		MediaURLs:      append([]string(nil), msg.MediaURLs...),
		Time:           time.Now(),
		StatusCallback: msg.StatusCallback,
		Status:         "queued",
	}
	s := a.sim
	s.mu.Lock()
	s.addReceivedLocked(text)
	if s.ctx.Err() == nil {
		s.callbacks.Add(1)
		go s.report(text.clone(), a.accountSID, a.authToken, s.failureLocked(text.To))
	}
	s.mu.Unlock()
	return &sms.SentMessage{SID: text.SID, Status: text.Status}, nil
}

// validateSimulatedSend checks a message as Twilio's Create Message does.
func validateSimulatedSend(msg *sms.OutboundMessage) error {
	refuse := func(code int, why string) error {
		return &sms.SendError{Code: code, Status: http.StatusBadRequest, Err: fmt.Errorf("%w: %s", sms.ErrTwilioRejection, why)}
	}
	switch {
	case msg == nil:
		return refuse(21602, "no message")
	case !e164Pattern.MatchString(msg.To):
		return refuse(21211, "the To number is not in E.164 form")
	case !e164Pattern.MatchString(msg.From):
		return refuse(21212, "the From number is not in E.164 form")
	case msg.Body == "" && len(msg.MediaURLs) == 0:
		return refuse(21602, "a message needs a body or media")
	case utf8.RuneCountInString(msg.Body) > sms.MaxBodyChars:
		return refuse(21617, "the body is longer than 1600 characters")
	case len(msg.MediaURLs) > sms.MaxMedia:
		return refuse(21623, "more than 10 media URLs")
	}
	for _, raw := range msg.MediaURLs {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return refuse(21620, "a media URL is not an absolute http(s) URL")
		}
	}
	return nil
}
