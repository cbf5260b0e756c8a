package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

// fakeProvider records sends; send decides each one's fate (nil: accepted at once).
type fakeProvider struct {
	mu       sync.Mutex
	sent     []*sms.OutboundMessage
	inFlight map[string]int
	maxConc  int
	overlap  bool // two texts of one conversation at Twilio at once
	send     func(ctx context.Context, msg *sms.OutboundMessage) error
	n        atomic.Int64
	// logged is Twilio's message log of texts to patients; listErr fails reading it.
	logged  []*sms.LoggedMessage
	listErr func() error
	// inbound is Twilio's message log of texts to the clinic number; inboundErr fails
	// reading it; listed records each read's number and since.
	inbound    []*sms.LoggedMessage
	inboundErr error
	listed     []listCall
	// latest is each text's latest state at Twilio for FetchMessage (absent: not found);
	// fetchErr fails the look-up; fetched records the SIDs looked up.
	latest   map[string]*sms.LoggedMessage
	fetchErr error
	fetched  []string
}

type listCall struct {
	to    string
	since time.Time
}

func (p *fakeProvider) CheckAccount(context.Context) error { return nil }
func (p *fakeProvider) LookupNumber(context.Context, string) (*sms.PhoneNumber, error) {
	return nil, nil
}
func (p *fakeProvider) ConfigureWebhooks(context.Context, string, sms.NumberWebhooks) error {
	return nil
}

func (p *fakeProvider) ListInbound(_ context.Context, to string, since time.Time) ([]*sms.LoggedMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listed = append(p.listed, listCall{to: to, since: since})
	if p.inboundErr != nil {
		return nil, p.inboundErr
	}
	var out []*sms.LoggedMessage
	for _, m := range p.inbound {
		if m.To == to && !m.DateSent.Before(since) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (p *fakeProvider) FetchMessage(_ context.Context, sid string) (*sms.LoggedMessage, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fetched = append(p.fetched, sid)
	if p.fetchErr != nil {
		return nil, p.fetchErr
	}
	if m, ok := p.latest[sid]; ok {
		return m, nil
	}
	return nil, sms.ErrMessageNotFound
}

func (p *fakeProvider) ListSent(_ context.Context, from, to string, since time.Time) ([]*sms.LoggedMessage, error) {
	if p.listErr != nil {
		if err := p.listErr(); err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*sms.LoggedMessage
	for _, m := range p.logged {
		if m.From == from && m.To == to && !m.DateCreated.Before(since) {
			out = append(out, m)
		}
	}
	return out, nil
}

// accepted puts a text into Twilio's log as if Twilio accepted it and its answer was lost.
func (p *fakeProvider) accepted(msg *sms.OutboundMessage) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	sid := fmt.Sprintf("SM%032d", p.n.Add(1))
	p.logged = append(p.logged, &sms.LoggedMessage{SID: sid, From: msg.From, To: msg.To, Body: msg.Body,
		NumMedia: len(msg.MediaURLs), Direction: "outbound-api", Status: "queued", DateCreated: time.Now()})
	return sid
}

func (p *fakeProvider) Send(ctx context.Context, msg *sms.OutboundMessage) (*sms.SentMessage, error) {
	p.mu.Lock()
	p.inFlight[msg.To]++
	if p.inFlight[msg.To] > 1 {
		p.overlap = true
	}
	total := 0
	for _, n := range p.inFlight {
		total += n
	}
	p.maxConc = max(p.maxConc, total)
	p.mu.Unlock()
	var err error
	if p.send != nil {
		err = p.send(ctx, msg)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight[msg.To]--
	if err != nil {
		return nil, err
	}
	p.sent = append(p.sent, msg)
	sid := fmt.Sprintf("SM%032d", p.n.Add(1))
	p.logged = append(p.logged, &sms.LoggedMessage{SID: sid, From: msg.From, To: msg.To, Body: msg.Body,
		NumMedia: len(msg.MediaURLs), Direction: "outbound-api", Status: "queued", DateCreated: time.Now()})
	return &sms.SentMessage{SID: sid, Status: "queued"}, nil
}

func (p *fakeProvider) bodies(to string) (out []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.sent {
		if m.To == to {
			out = append(out, m.Body)
		}
	}
	return out
}

func (p *fakeProvider) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

type accounts struct{ p sms.Provider }

func (a accounts) Provider(ctx context.Context, loginID string) (sms.Provider, error) {
	if loginID != "15550001111" {
		return nil, outbox.ErrNotLinked
	}
	return a.p, nil
}

// plainSealer stands in for the key ring: the tests look at ordering, not cryptography.
type plainSealer struct{}

func (plainSealer) Seal(plaintext, additional []byte) (string, []byte, error) {
	return "test", append([]byte(string(additional)+"|"), plaintext...), nil
}

func (plainSealer) Open(keyID string, sealed, additional []byte) ([]byte, error) {
	prefix := string(additional) + "|"
	if keyID != "test" || len(sealed) < len(prefix) || string(sealed[:len(prefix)]) != prefix {
		return nil, errors.New("sealed for another conversation")
	}
	return sealed[len(prefix):], nil
}

type hooks struct {
	mu     sync.Mutex
	failed []*outbox.Text
	errs   []error
}

func (h *hooks) Sent(context.Context, *outbox.Text, *sms.SentMessage) {}
func (h *hooks) Failed(_ context.Context, t *outbox.Text, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failed, h.errs = append(h.failed, t), append(h.errs, err)
}

func (h *hooks) failures() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.errs...)
}

const clinic = "15550001111"

func patient(i int) string { return fmt.Sprintf("+1555123%04d", i) }

type env struct {
	db       *database.Database
	provider *fakeProvider
	hooks    *hooks
	cfg      *config.Config
}

func (e *env) start(t *testing.T) *outbox.Outbox {
	o := outbox.New(outbox.Options{DB: e.db, Config: e.cfg, Accounts: accounts{e.provider}, Sealer: plainSealer{},
		Hooks: e.hooks, StatusCallback: func(string) string { return "https://bridge.example/status" }, Log: zerolog.Nop()})
	require.NoError(t, o.Start(context.Background()))
	t.Cleanup(o.Stop)
	return o
}

func (e *env) text(i, n int) *outbox.Text {
	return &outbox.Text{LoginID: clinic, PortalID: patient(i)[1:], From: "+" + clinic, To: patient(i),
		Body: fmt.Sprintf("reply %d to patient %d", n, i), Kind: outbox.KindStaffReply}
}

func eachDB(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			spec := testenv.NewDatabase(t, kind)
			raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
			require.NoError(t, err)
			t.Cleanup(func() { _ = raw.Close() })
			db := database.New(raw, zerolog.Nop())
			require.NoError(t, db.Upgrade(context.Background()))
			cfg := &config.Config{MaxSegments: 10, Outbox: config.OutboxConfig{Concurrency: 16,
				RetryInterval: 20 * time.Millisecond, MaxRetryInterval: 100 * time.Millisecond, MaxAttempts: 3}}
			fn(t, &env{db: db, provider: &fakeProvider{inFlight: map[string]int{}}, hooks: &hooks{}, cfg: cfg})
		})
	}
}

func TestConversationsAreSentAtOnceEachInOrder(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		// Twilio's pace: every call takes a while.
		e.provider.send = func(ctx context.Context, _ *sms.OutboundMessage) error {
			time.Sleep(150 * time.Millisecond)
			return nil
		}
		o := e.start(t)
		ctx := context.Background()
		for n := range 3 {
			for i := range 8 {
				require.NoError(t, o.Enqueue(ctx, e.text(i, n)))
			}
		}
		require.Eventually(t, func() bool { return e.provider.count() == 24 }, 20*time.Second, 10*time.Millisecond)
		assert.Equal(t, 8, e.provider.maxConc, "the 8 conversations were at Twilio at the same time")
		assert.False(t, e.provider.overlap, "a conversation never had two texts at Twilio at once")
		for i := range 8 {
			assert.Equal(t, []string{fmt.Sprintf("reply 0 to patient %d", i), fmt.Sprintf("reply 1 to patient %d", i),
				fmt.Sprintf("reply 2 to patient %d", i)}, e.provider.bodies(patient(i)), "in the order staff sent them")
		}
		require.Eventually(t, func() bool { return unfinished(t, e) == 0 }, 5*time.Second, 10*time.Millisecond,
			"every text is recorded as sent")
	})
}

func unfinished(t *testing.T, e *env) int {
	n, err := e.db.Outbox.CountUnfinished(context.Background())
	require.NoError(t, err)
	return n
}

func TestHungSendHoldsBackOnlyItsConversation(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		e.provider.send = func(ctx context.Context, msg *sms.OutboundMessage) error {
			if msg.To == patient(0) {
				<-release
			}
			return nil
		}
		o := e.start(t)
		ctx := context.Background()
		for i := range 8 {
			require.NoError(t, o.Enqueue(ctx, e.text(i, 0)))
			require.NoError(t, o.Enqueue(ctx, e.text(i, 1)))
		}
		require.Eventually(t, func() bool { return e.provider.count() == 14 }, 10*time.Second, 10*time.Millisecond,
			"the other 7 conversations' texts went out while the first one's hung")
		assert.Empty(t, e.provider.bodies(patient(0)), "the hung conversation's second text waits for its first")
		close(release)
		require.Eventually(t, func() bool { return len(e.provider.bodies(patient(0))) == 2 }, 10*time.Second, 10*time.Millisecond)
		assert.Equal(t, []string{"reply 0 to patient 0", "reply 1 to patient 0"}, e.provider.bodies(patient(0)))
	})
}

func TestOptedOutPatientGetsNothing(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		conv, err := e.db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: clinic, PortalID: patient(1)[1:],
			ClinicPhone: "+" + clinic, PatientPhone: patient(1)})
		require.NoError(t, err)
		block, atTwilio := make(chan struct{}), make(chan struct{})
		e.provider.send = func(ctx context.Context, msg *sms.OutboundMessage) error {
			if msg.Body == "reply 0 to patient 1" {
				close(atTwilio)
				<-block
			}
			return nil
		}
		o := e.start(t)
		require.NoError(t, o.Enqueue(ctx, e.text(1, 0)))
		require.NoError(t, o.Enqueue(ctx, e.text(1, 1)), "accepted while the patient has not opted out")
		<-atTwilio
		// STOP arrives while the second text waits behind the first.
		require.NoError(t, e.db.Conversation.SetOptedOut(ctx, conv.LoginID, conv.PortalID, true))
		close(block)
		require.Eventually(t, func() bool { return len(e.hooks.failures()) == 1 }, 10*time.Second, 10*time.Millisecond)
		assert.ErrorIs(t, e.hooks.failures()[0], outbox.ErrOptedOut, "the waiting text is refused when its turn comes")
		assert.Equal(t, []string{"reply 0 to patient 1"}, e.provider.bodies(patient(1)))

		err = o.Enqueue(ctx, e.text(1, 2))
		var refusal *outbox.Refusal
		require.ErrorAs(t, err, &refusal)
		assert.ErrorIs(t, err, outbox.ErrOptedOut)
		_, err = o.Send(ctx, e.text(1, 3))
		assert.ErrorIs(t, err, outbox.ErrOptedOut, "a code is refused too")
		assert.Len(t, e.provider.bodies(patient(1)), 1, "nothing more reached Twilio")
	})
}

// TestEnqueueWithTakesTheCallersConversationAndTheTurnReadsItAfresh: a caller that has
// just read the conversation hands it over instead of the outbox reading it again; the
// check when the text's turn comes still reads the table, so a STOP recorded after the
// caller's read is obeyed.
func TestEnqueueWithTakesTheCallersConversationAndTheTurnReadsItAfresh(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		conv, err := e.db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: clinic, PortalID: patient(1)[1:],
			ClinicPhone: "+" + clinic, PatientPhone: patient(1)})
		require.NoError(t, err)
		o := e.start(t)

		optedOut := *conv
		optedOut.OptedOut = true
		err = o.EnqueueWith(ctx, e.text(1, 0), &optedOut)
		assert.ErrorIs(t, err, outbox.ErrOptedOut, "the conversation handed over is the one checked")
		assert.ErrorIs(t, o.CheckWith(ctx, e.text(1, 0), &optedOut), outbox.ErrOptedOut)
		assert.Zero(t, unfinished(t, e), "nothing was stored")
		empty := e.text(1, 1)
		empty.Body = ""
		assert.ErrorIs(t, o.EnqueueWith(ctx, empty, conv), outbox.ErrEmpty, "the text's own rules still apply")

		// STOP is recorded after the caller read the conversation.
		require.NoError(t, e.db.Conversation.SetOptedOut(ctx, conv.LoginID, conv.PortalID, true))
		require.NoError(t, o.EnqueueWith(ctx, e.text(1, 2), conv), "stored: the caller's conversation had not opted out")
		require.Eventually(t, func() bool { return len(e.hooks.failures()) == 1 }, 10*time.Second, 10*time.Millisecond)
		assert.ErrorIs(t, e.hooks.failures()[0], outbox.ErrOptedOut, "refused when its turn came")
		assert.Empty(t, e.provider.bodies(patient(1)), "nothing reached Twilio")
		assert.Zero(t, unfinished(t, e))
	})
}

func TestTooLongAndEmptyTextsAreRefused(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		o := e.start(t)
		ctx := context.Background()
		long := e.text(2, 0)
		for range 15 {
			long.Body += "This sentence fills one part of a long SMS text message of 160 characters, as GSM-7 counts them, and more besides to make sure...... "
		}
		err := o.Enqueue(ctx, long)
		assert.ErrorIs(t, err, outbox.ErrTooLong)
		assert.Contains(t, err.Error(), "more than the limit of 10")
		empty := e.text(2, 1)
		empty.Body = ""
		assert.ErrorIs(t, o.Enqueue(ctx, empty), outbox.ErrEmpty)
		n, err := e.db.Outbox.CountUnfinished(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "nothing was stored")
	})
}

func TestTransientRefusalsAreRetriedAndFinalOnesReported(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		var calls atomic.Int32
		e.provider.send = func(ctx context.Context, msg *sms.OutboundMessage) error {
			switch msg.To {
			case patient(3): // two 503s, then accepted
				if calls.Add(1) <= 2 {
					return &sms.SendError{Status: 503, Code: 20503, NotSent: true, Err: errors.New("service unavailable")}
				}
			case patient(4): // a landline: refused for good
				return &sms.SendError{Status: 400, Code: 21614, Err: errors.New("not a mobile number")}
			case patient(5): // always 503: out of attempts
				return &sms.SendError{Status: 503, Code: 20503, NotSent: true, Err: errors.New("service unavailable")}
			}
			return nil
		}
		o := e.start(t)
		ctx := context.Background()
		for _, i := range []int{3, 4, 5} {
			require.NoError(t, o.Enqueue(ctx, e.text(i, 0)))
		}
		require.Eventually(t, func() bool { return len(e.hooks.failures()) == 2 && e.provider.count() == 1 },
			10*time.Second, 10*time.Millisecond)
		assert.Equal(t, []string{"reply 0 to patient 3"}, e.provider.bodies(patient(3)), "sent once, after two retries")
		assert.Equal(t, int32(3), calls.Load())
		var codes []int
		for _, err := range e.hooks.failures() {
			var sendErr *sms.SendError
			require.ErrorAs(t, err, &sendErr)
			codes = append(codes, sendErr.Code)
		}
		assert.ElementsMatch(t, []int{21614, 20503}, codes)
		require.Eventually(t, func() bool { return unfinished(t, e) == 0 }, 5*time.Second, 10*time.Millisecond)
	})
}

func TestTextsBeingSentWhenStoppedGoAfterRestart(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// A process that stored three texts and died while the first was on its way to
		// Twilio, which never got it.
		id := stoppedWhileSending(t, e, 6, 3)

		e.start(t)
		require.Eventually(t, func() bool { return e.provider.count() == 3 }, 10*time.Second, 10*time.Millisecond)
		assert.Equal(t, []string{"reply 0 to patient 6", "reply 1 to patient 6", "reply 2 to patient 6"}, e.provider.bodies(patient(6)))
		out, err := e.db.Outbox.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, database.OutboxSent, out.State)
		assert.Nil(t, out.Sealed, "the body is dropped once sent")
		rec, err := e.db.Outbound.Get(ctx, out.MessageSID)
		require.NoError(t, err)
		require.NotNil(t, rec, "Twilio's answer is recorded for status callbacks")
		assert.Equal(t, outbox.RemoteID(out.ID), rec.RemoteID)
	})
}

// stoppedWhileSending stores texts n of patient i as a process that died while the first
// was at Twilio left them; it returns the first's ID.
func stoppedWhileSending(t *testing.T, e *env, i, n int) int64 {
	ctx := context.Background()
	first := outbox.New(outbox.Options{DB: e.db, Config: e.cfg, Accounts: accounts{e.provider}, Sealer: plainSealer{},
		Hooks: e.hooks, Log: zerolog.Nop()})
	for k := range n {
		require.NoError(t, first.Enqueue(ctx, e.text(i, k)))
	}
	due, err := e.db.Outbox.GetDue(ctx, time.Now(), 10)
	require.NoError(t, err)
	require.Len(t, due, 1, "one conversation: only its oldest text is due")
	claimed, err := e.db.Outbox.Claim(ctx, due[0], time.Now())
	require.NoError(t, err)
	require.True(t, claimed)
	return due[0].ID
}

// TestATextTwilioAcceptedBeforeTheStopIsNotSentAgain: the process died after Twilio
// accepted its text and before the answer was recorded. After the restart the text is
// found in Twilio's log and recorded with its MessageSid, not sent again; the same words
// sent earlier (recorded under another MessageSid) are not mistaken for it.
func TestATextTwilioAcceptedBeforeTheStopIsNotSentAgain(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		earlier := e.text(6, 0)
		earlierSID := e.provider.accepted(&sms.OutboundMessage{From: earlier.From, To: earlier.To, Body: earlier.Body})
		require.NoError(t, e.db.Outbound.Insert(ctx, &database.Outbound{MessageSID: earlierSID, LoginID: clinic,
			PortalID: earlier.PortalID, Status: "delivered", Kind: string(outbox.KindStaffReply)}))
		id := stoppedWhileSending(t, e, 6, 3)
		sid := e.provider.accepted(&sms.OutboundMessage{From: earlier.From, To: earlier.To, Body: earlier.Body})

		e.start(t)
		require.Eventually(t, func() bool { return e.provider.count() == 2 }, 10*time.Second, 10*time.Millisecond)
		time.Sleep(100 * time.Millisecond) // a text sent twice would be at Twilio by now
		assert.Equal(t, []string{"reply 1 to patient 6", "reply 2 to patient 6"}, e.provider.bodies(patient(6)),
			"the text Twilio had accepted is not sent again; the rest follow in order")
		out, err := e.db.Outbox.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, database.OutboxSent, out.State)
		assert.Equal(t, sid, out.MessageSID, "recorded under the MessageSid Twilio gave it")
		rec, err := e.db.Outbound.Get(ctx, sid)
		require.NoError(t, err)
		require.NotNil(t, rec, "recorded for its status callbacks")
		assert.Equal(t, outbox.RemoteID(id), rec.RemoteID)
		assert.Empty(t, e.hooks.failures())
	})
}

// TestATextIsSettledOnceTwilioCanBeAsked: while Twilio's log cannot be read, the text
// a stopped process was sending and the rest of its conversation wait (neither lost nor
// sent twice), other conversations go on, and it is settled when Twilio answers.
func TestATextIsSettledOnceTwilioCanBeAsked(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var down atomic.Bool
		down.Store(true)
		e.provider.listErr = func() error {
			if down.Load() {
				return &sms.SendError{Code: 20500, Err: errors.New("Twilio is unavailable")}
			}
			return nil
		}
		id := stoppedWhileSending(t, e, 6, 2)
		o := e.start(t)
		require.NoError(t, o.Enqueue(ctx, e.text(7, 0)))
		require.Eventually(t, func() bool { return len(e.provider.bodies(patient(7))) == 1 }, 10*time.Second, 10*time.Millisecond,
			"another conversation is not held back")
		time.Sleep(200 * time.Millisecond) // several lookups fail meanwhile
		assert.Empty(t, e.provider.bodies(patient(6)), "nothing is sent while Twilio's log cannot be read")
		out, err := e.db.Outbox.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, database.OutboxSending, out.State)

		down.Store(false)
		require.Eventually(t, func() bool { return len(e.provider.bodies(patient(6))) == 2 }, 10*time.Second, 10*time.Millisecond)
		assert.Equal(t, []string{"reply 0 to patient 6", "reply 1 to patient 6"}, e.provider.bodies(patient(6)),
			"not in the log: sent, once, in order")
		assert.Empty(t, e.hooks.failures())
	})
}

// TestAStaffMessageDeliveredTwiceIsQueuedOnce: the homeserver delivers a staff message
// again (the bridge stopped before answering): it is queued once, under the same ID.
func TestAStaffMessageDeliveredTwiceIsQueuedOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := outbox.New(outbox.Options{DB: e.db, Config: e.cfg, Accounts: accounts{e.provider}, Sealer: plainSealer{},
			Hooks: e.hooks, Log: zerolog.Nop()})
		first, again, other := e.text(6, 0), e.text(6, 0), e.text(6, 1)
		first.EventID, again.EventID, other.EventID = "$staff1", "$staff1", "$staff2"
		require.NoError(t, o.Enqueue(ctx, first))
		require.NoError(t, o.Enqueue(ctx, again))
		require.NoError(t, o.Enqueue(ctx, other))
		assert.Equal(t, first.ID, again.ID, "the same text")
		assert.NotEqual(t, first.ID, other.ID)
		assert.Equal(t, 2, unfinished(t, e))
		// Texts the bridge sends on its own may belong to one notice.
		for range 2 {
			alert := e.text(6, 2)
			alert.Kind, alert.EventID = outbox.KindAlert, "$notice"
			require.NoError(t, o.Enqueue(ctx, alert))
		}
		assert.Equal(t, 4, unfinished(t, e))
	})
}

// TestPerNumberRateHoldsANumberBackAlone: at outbox.per_number_rate 4, one clinic
// number's 8 texts (to 8 patients) leave at most 4 a second, while another number's
// texts are not held back behind them.
func TestPerNumberRateHoldsANumberBackAlone(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.cfg.Outbox.PerNumberRate = 4
		var mu sync.Mutex
		sentAt := map[string][]time.Time{}
		e.provider.send = func(_ context.Context, msg *sms.OutboundMessage) error {
			mu.Lock()
			defer mu.Unlock()
			sentAt[msg.From] = append(sentAt[msg.From], time.Now())
			return nil
		}
		o := e.start(t)
		ctx := context.Background()
		for i := range 8 {
			require.NoError(t, o.Enqueue(ctx, e.text(i, 0)))
		}
		const other = "+15550002222"
		for i := 8; i < 10; i++ {
			text := e.text(i, 0)
			text.From = other
			require.NoError(t, o.Enqueue(ctx, text))
		}
		require.Eventually(t, func() bool { return e.provider.count() == 10 }, 20*time.Second, 10*time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		busy, quiet := sentAt["+"+clinic], sentAt[other]
		require.Len(t, busy, 8)
		require.Len(t, quiet, 2)
		// One at once, then one every 250 ms: 7 intervals.
		assert.GreaterOrEqual(t, busy[7].Sub(busy[0]), 1700*time.Millisecond, "at most 4 a second")
		for i := 1; i < len(busy); i++ {
			assert.GreaterOrEqual(t, busy[i].Sub(busy[i-1]), 200*time.Millisecond, "text %d came too soon after the one before", i)
		}
		assert.True(t, quiet[1].Before(busy[7]), "the other number's texts did not wait behind the busy one's")
	})
}

// TestPacedNumberDoesNotHideOthers: a number held to 1 text a second has 70 texts queued
// (more than one read of the queue holds) before another number's one: that one leaves
// at once, not after the 70.
func TestPacedNumberDoesNotHideOthers(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.cfg.Outbox.PerNumberRate = 1
		o := outbox.New(outbox.Options{DB: e.db, Config: e.cfg, Accounts: accounts{e.provider}, Sealer: plainSealer{},
			Hooks: e.hooks, Log: zerolog.Nop()})
		ctx := context.Background()
		for i := range 70 {
			require.NoError(t, o.Enqueue(ctx, e.text(100+i, 0)))
		}
		other := e.text(7, 0)
		other.From = "+15550002222"
		require.NoError(t, o.Enqueue(ctx, other))
		require.NoError(t, o.Start(ctx))
		t.Cleanup(o.Stop)
		require.Eventually(t, func() bool { return len(e.provider.bodies(patient(7))) == 1 }, 5*time.Second, 10*time.Millisecond,
			"the other number's text waited behind the paced number's")
		assert.LessOrEqual(t, e.provider.count(), 7, "the paced number sent about one a second")
	})
}

func TestUnlinkedNumberFailsItsTexts(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		o := e.start(t)
		text := e.text(7, 0)
		text.LoginID = "15550009999"
		require.NoError(t, o.Enqueue(context.Background(), text))
		require.Eventually(t, func() bool { return len(e.hooks.failures()) == 1 }, 10*time.Second, 10*time.Millisecond)
		assert.ErrorIs(t, e.hooks.failures()[0], outbox.ErrNotLinked)
	})
}
