package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

// Text is one text or MMS to a patient.
type Text struct {
	LoginID   string // the clinic number's login
	PortalID  string // the conversation
	From      string // the clinic number, E.164
	To        string // the patient, E.164
	Body      string
	MediaURLs []string
	Kind      Kind
	// EventID is the Matrix event shown with the text (a staff message, or the bridge's
	// notice for a text it sent on its own); SenderMXID is who sent that event.
	EventID    string
	SenderMXID string

	// Set by the outbox.
	ID       int64 // 0 for a text sent at once (Send)
	Attempts int
}

// RemoteID is the bridgev2 message ID a queued staff text is stored under.
func RemoteID(id int64) string { return fmt.Sprintf("out-%d", id) }

// Accounts finds the provider that sends for a clinic number.
type Accounts interface {
	// Provider is called before each send attempt with the text's clinic number login.
	// ErrNotLinked (wrapped) says the number is gone; any other error is retried.
	Provider(ctx context.Context, loginID string) (sms.Provider, error)
}

// Sealer seals text bodies at rest (the secure chat's key ring implements it).
type Sealer interface {
	Seal(plaintext, additional []byte) (keyID string, sealed []byte, err error)
	Open(keyID string, sealed, additional []byte) ([]byte, error)
}

// Hooks are told what became of each text. They are called from the outbox's workers,
// one conversation's texts in order, several conversations at once.
type Hooks interface {
	// Sent is called after Twilio accepted a text and the acceptance is recorded.
	Sent(ctx context.Context, text *Text, sent *sms.SentMessage)
	// Failed is called once for a text that will not be sent: refused when its turn came
	// (e.g. the patient opted out meanwhile), refused by Twilio, or out of retries.
	Failed(ctx context.Context, text *Text, err error)
}

// Options are what an Outbox is built from.
type Options struct {
	DB       *database.Database
	Config   *config.Config
	Accounts Accounts
	Sealer   Sealer
	Hooks    Hooks
	// StatusCallback is the URL Twilio posts a clinic number's delivery updates to ("" for none).
	StatusCallback func(loginID string) string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	Log zerolog.Logger
}

// Outbox stores and sends texts to patients.
type Outbox struct {
	Options
	wakeCh  chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	running sync.WaitGroup
	once    sync.Once
}

// New builds an outbox; Start begins sending.
func New(opts Options) *Outbox {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Outbox{Options: opts, wakeCh: make(chan struct{}, 1), done: make(chan struct{})}
}

// stored is what is sealed of a text.
type stored struct {
	Body      string   `json:"body"`
	MediaURLs []string `json:"media_urls,omitempty"`
}

func additional(t *Text) []byte {
	return []byte("outbox\x00" + t.LoginID + "\x00" + t.PortalID)
}

// Enqueue checks a text against the clinic's rules and stores it to be sent in its
// conversation's turn. When it returns without error the text is durable: a bridge
// stopped after this sends it after the restart. A *Refusal says why it will not be sent.
// A staff reply whose event is in the outbox already is not stored again (t.ID is the
// stored one's): a staff message is texted once however often it is delivered.
func (o *Outbox) Enqueue(ctx context.Context, t *Text) error {
	if err := o.check(ctx, t); err != nil {
		return err
	}
	return o.store(ctx, t)
}

// EnqueueWith is Enqueue for a caller that has just read the text's conversation (conv,
// nil when there is none): the clinic's rules are checked against it, not read again. The
// check when the text's turn comes reads the conversation afresh.
func (o *Outbox) EnqueueWith(ctx context.Context, t *Text, conv *database.Conversation) error {
	if err := o.CheckWith(ctx, t, conv); err != nil {
		return err
	}
	return o.store(ctx, t)
}

func (o *Outbox) store(ctx context.Context, t *Text) error {
	plain, err := json.Marshal(stored{Body: t.Body, MediaURLs: t.MediaURLs})
	if err != nil {
		return err
	}
	keyID, sealed, err := o.Sealer.Seal(plain, additional(t))
	if err != nil {
		return fmt.Errorf("failed to seal text: %w", err)
	}
	row := &database.OutboxMessage{LoginID: t.LoginID, PortalID: t.PortalID, Kind: string(t.Kind), From: t.From, To: t.To,
		KeyID: keyID, Sealed: sealed, EventID: t.EventID, SenderMXID: t.SenderMXID, CreatedAt: o.Now()}
	already, err := o.DB.Outbox.Insert(ctx, row)
	if err != nil {
		return fmt.Errorf("failed to store text in the outbox: %w", err)
	} else if already != nil {
		// The homeserver delivered the staff message again: the bridge stopped after
		// queueing it and before answering. It is queued (or sent) already.
		t.ID = already.ID
		zerolog.Ctx(ctx).Debug().Int64("outbox_id", already.ID).Str("state", string(already.State)).
			Msg("Staff message already in the outbox; not queued again")
		return nil
	}
	t.ID = row.ID
	zerolog.Ctx(ctx).Debug().Int64("outbox_id", row.ID).Str("kind", string(t.Kind)).Msg("Text stored in the outbox")
	o.wake()
	return nil
}

// Send checks and sends a text at once, outside the queue, and records Twilio's answer;
// for one-time codes, which are never stored and which the patient waits for. Transient
// refusals are retried briefly.
func (o *Outbox) Send(ctx context.Context, t *Text) (*sms.SentMessage, error) {
	if err := o.check(ctx, t); err != nil {
		return nil, err
	}
	provider, err := o.Accounts.Provider(ctx, t.LoginID)
	if err != nil {
		return nil, err
	}
	sent, attempts, err := sms.SendWithRetry(ctx, provider, o.message(t), sms.DefaultRetryPolicy)
	t.Attempts = attempts
	if err != nil {
		return nil, err
	}
	o.record(ctx, t, sent)
	o.Hooks.Sent(ctx, t, sent)
	return sent, nil
}

// check applies the rules every text obeys: not to a number that opted out, not empty,
// not longer than network.max_segments. Callers that post a notice before queueing use
// Check to refuse first.
func (o *Outbox) Check(ctx context.Context, t *Text) error { return o.check(ctx, t) }

func (o *Outbox) check(ctx context.Context, t *Text) error {
	// The text's own rules first: they need no read.
	if err := o.checkText(t); err != nil {
		return err
	}
	conv, err := o.DB.Conversation.Get(ctx, t.LoginID, t.PortalID)
	if err != nil {
		return fmt.Errorf("failed to read conversation: %w", err)
	}
	return checkOptOut(t, conv)
}

// CheckWith is Check against a conversation the caller has just read (nil: none).
func (o *Outbox) CheckWith(_ context.Context, t *Text, conv *database.Conversation) error {
	if err := o.checkText(t); err != nil {
		return err
	}
	return checkOptOut(t, conv)
}

func (o *Outbox) checkText(t *Text) error {
	if t.Body == "" && len(t.MediaURLs) == 0 {
		return refuse(ErrEmpty, "")
	}
	if segments, enc := sms.CountSegments(t.Body); segments > o.Config.MaxSegments {
		return refuse(ErrTooLong, "this text would be %d SMS segments (%s), more than the limit of %d; shorten it or split it",
			segments, enc, o.Config.MaxSegments)
	}
	return nil
}

func checkOptOut(t *Text, conv *database.Conversation) error {
	// The answer to STOP itself (the opt-out confirmation carriers require) still goes.
	if conv != nil && conv.OptedOut && t.Kind != KindKeywordReply {
		return refuse(ErrOptedOut, "")
	}
	return nil
}

func (o *Outbox) message(t *Text) *sms.OutboundMessage {
	msg := &sms.OutboundMessage{From: t.From, To: t.To, Body: t.Body, MediaURLs: t.MediaURLs}
	if o.StatusCallback != nil {
		msg.StatusCallback = o.StatusCallback(t.LoginID)
	}
	return msg
}

// record stores Twilio's acceptance of a text sent at once, for its status callbacks.
func (o *Outbox) record(ctx context.Context, t *Text, sent *sms.SentMessage) {
	if err := o.DB.Outbound.Insert(ctx, outboundOf(t, sent, o.Now())); err != nil {
		// The text went out; only its later delivery updates will be missing.
		zerolog.Ctx(ctx).Err(err).Str("message_sid", sent.SID).Msg("Failed to record sent text")
	}
}

func outboundOf(t *Text, sent *sms.SentMessage, now time.Time) *database.Outbound {
	status := sent.Status
	if status == "" {
		status = "queued"
	}
	out := &database.Outbound{MessageSID: sent.SID, LoginID: t.LoginID, PortalID: t.PortalID, EventID: t.EventID,
		SenderMXID: t.SenderMXID, Status: status, Kind: string(t.Kind), CreatedAt: now}
	if t.Kind == KindStaffReply && t.ID != 0 {
		out.RemoteID = RemoteID(t.ID)
	}
	return out
}

// wake makes the workers look for due texts now.
func (o *Outbox) wake() {
	select {
	case o.wakeCh <- struct{}{}:
	default:
	}
}
