package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// twilioAPIVersion is the only REST API version the fake speaks.
const twilioAPIVersion = "2010-04-01"

var twilioE164 = regexp.MustCompile(`^\+[1-9]\d{7,14}$`)

// FakeTwilio is a strict stand-in for Twilio's 2010-04-01 REST API and for the webhooks
// Twilio sends. It rejects what the real API rejects, with Twilio's error codes and
// error JSON, so that twilio-go reports *client.TwilioRestError exactly as in production.
// It is safe for concurrent use.
type FakeTwilio struct {
	server *httptest.Server
	// cdn serves media bytes on a different host name, as Twilio redirects media
	// downloads to its CDN; it must not receive the account's credentials.
	cdn     *httptest.Server
	cdnBase string
	client  *http.Client

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu           sync.Mutex
	closed       bool
	changed      chan struct{}
	accounts     map[string]*fakeTwilioAccount
	accountOrder []string
	numbers      []*fakeTwilioNumber
	services     map[string]*fakeTwilioService
	messages     []*fakeTwilioMessage
	// inbound are the messages patients sent (SendInbound), in the same message log.
	inbound []*fakeTwilioMessage
	// seq orders the message log when two messages have the same date.
	seq           int64
	optOuts       map[fakeTwilioPair]bool
	outcomes      map[string]fakeTwilioOutcome
	callbacks     []CallbackResult
	media         map[string]*fakeTwilioMedia
	cdnObjects    map[string]*fakeTwilioMedia
	callbackDelay time.Duration
	// failEvery makes every n-th create-message request answer 503 (0: never).
	failEvery   int
	createCount int
	// latency is the pace of every REST call (Twilio answers in 100-500 ms); hangs holds
	// create-message requests to a number for longer, before the message is created;
	// answerHangs holds only their answer.
	latencyMin, latencyMax time.Duration
	hangs                  map[string]time.Duration
	answerHangs            map[string]time.Duration
}

// FakeMessage is an outbound message the fake accepted through POST .../Messages.json.
type FakeMessage struct {
	// SID is the message SID returned to the caller ("SM…", or "MM…" with media).
	SID        string
	AccountSID string
	// MessagingServiceSID is set when the request named a messaging service.
	MessagingServiceSID string
	// From is the sending number: the From parameter, or the number the messaging
	// service picked.
	From           string
	To             string
	Body           string
	MediaURLs      []string
	StatusCallback string
	// Status is the latest status: queued (or accepted), sent, delivered, undelivered
	// or failed.
	Status string
	// ErrorCode is the Twilio error code of an undelivered or failed message, else 0.
	ErrorCode   int
	NumSegments int
	ReceivedAt  time.Time
}

// CallbackResult records one status callback the fake posted to a StatusCallback URL.
type CallbackResult struct {
	MessageSID string
	URL        string
	// MessageStatus is the status the callback reported (sent, delivered, …).
	MessageStatus string
	// ErrorCode is the ErrorCode parameter sent, 0 when none was.
	ErrorCode int
	// Params is the exact form posted (it was signed with X-Twilio-Signature).
	Params url.Values
	// StatusCode is the receiver's HTTP status, 0 when the request failed.
	StatusCode int
	// Err is the transport error, if the request could not be made.
	Err error
	// Attempts is how often the callback was posted: once, unless the URL's connection
	// overrides ask for retries.
	Attempts int
	SentAt   time.Time
}

type fakeTwilioAccount struct {
	sid, authToken string
	created        time.Time
}

type fakeTwilioNumber struct {
	sid, accountSID, phoneNumber, friendlyName string

	smsURL, smsMethod, smsFallbackURL, smsFallbackMethod         string
	voiceURL, voiceMethod, voiceFallbackURL, voiceFallbackMethod string
	statusCallback, statusCallbackMethod                         string

	created, updated time.Time
}

type fakeTwilioService struct {
	sid, accountSID string
	senders         []string
}

type fakeTwilioMessage struct {
	FakeMessage
	requestedFrom string
	// direction is "inbound" for a patient's text, "" for one sent through the API.
	direction string
	seq       int64
	created   time.Time
	updated   time.Time
	sent      time.Time
}

// fakeTwilioPair is a (Twilio sender, recipient) pair for opt-outs.
type fakeTwilioPair struct{ sender, recipient string }

type fakeTwilioOutcome struct {
	status    string
	errorCode int
}

// NewFakeTwilio starts the fake on 127.0.0.1. Register accounts and numbers with
// AddAccount and AddNumber, point the bridge's twilio.api_url at URL(), and Close it
// when the test ends.
func NewFakeTwilio() *FakeTwilio {
	ctx, cancel := context.WithCancel(context.Background())
	f := &FakeTwilio{
		ctx:           ctx,
		cancel:        cancel,
		changed:       make(chan struct{}),
		accounts:      make(map[string]*fakeTwilioAccount),
		services:      make(map[string]*fakeTwilioService),
		optOuts:       make(map[fakeTwilioPair]bool),
		outcomes:      make(map[string]fakeTwilioOutcome),
		media:         make(map[string]*fakeTwilioMedia),
		cdnObjects:    make(map[string]*fakeTwilioMedia),
		callbackDelay: 10 * time.Millisecond,
		latencyMin:    100 * time.Millisecond,
		latencyMax:    250 * time.Millisecond,
		hangs:         map[string]time.Duration{},
		answerHangs:   map[string]time.Duration{},
	}
	f.server = httptest.NewServer(http.HandlerFunc(f.serveAPI))
	f.cdn, f.cdnBase = startFakeTwilioCDN(http.HandlerFunc(f.serveCDN))
	f.client = &http.Client{
		// Twilio gives a webhook 15 seconds and does not follow redirects.
		Timeout: 15 * time.Second,
		// A fresh connection per webhook: a pooled one to a bridge that was killed and
		// restarted would fail the POST with EOF, which says nothing about the bridge.
		Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return f
}

// startFakeTwilioCDN serves the media CDN under another host name than the API, so
// that an HTTP client following the media redirect drops the Authorization header as
// it would for Twilio's real CDN: 127.0.0.2 where it can be bound, else "localhost".
func startFakeTwilioCDN(h http.Handler) (*httptest.Server, string) {
	srv := httptest.NewUnstartedServer(h)
	if l, err := net.Listen("tcp", "127.0.0.2:0"); err == nil {
		_ = srv.Listener.Close()
		srv.Listener = l
		srv.Start()
		return srv, srv.URL
	}
	srv.Start()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	return srv, fmt.Sprintf("http://localhost:%d", port)
}

// URL is the API base URL, such as http://127.0.0.1:41234, to use in place of
// https://api.twilio.com (the bridge's twilio.api_url).
func (f *FakeTwilio) URL() string { return f.server.URL }

// Transport is an http.RoundTripper for twilio-go's client.Client.HTTPClient: it sends
// requests for api.twilio.com (and its regional hosts) to the fake and refuses any
// other host.
func (f *FakeTwilio) Transport() http.RoundTripper {
	base := f.server.Client().Transport
	target, _ := url.Parse(f.server.URL)
	return fakeTwilioRoundTripper(func(r *http.Request) (*http.Response, error) {
		host := r.URL.Hostname()
		if host != "api.twilio.com" && !(strings.HasPrefix(host, "api.") && strings.HasSuffix(host, ".twilio.com")) {
			return nil, fmt.Errorf("fake twilio transport does not serve host %q", host)
		}
		r = r.Clone(r.Context())
		r.URL.Scheme = target.Scheme
		r.URL.Host = target.Host
		r.Host = ""
		return base.RoundTrip(r)
	})
}

type fakeTwilioRoundTripper func(*http.Request) (*http.Response, error)

func (rt fakeTwilioRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return rt(r) }

// Close stops the servers, abandons status callbacks not yet posted and waits for the
// goroutines posting them. It is safe to call more than once.
func (f *FakeTwilio) Close() {
	f.closeOnce.Do(func() {
		f.cancel()
		f.mu.Lock()
		f.closed = true
		f.broadcastLocked()
		f.mu.Unlock()
		// Closing the API server waits for its handlers, the only starters of
		// callback goroutines, so wg has no Add after this point.
		f.server.Close()
		f.wg.Wait()
		f.cdn.Close()
		f.client.CloseIdleConnections()
	})
}

// AddAccount registers an account (or rotates its auth token). twilio-go accepts only
// alphanumeric SIDs and tokens, such as "AC" + 32 hex digits and 32 hex digits.
func (f *FakeTwilio) AddAccount(sid, authToken string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if acct, ok := f.accounts[sid]; ok {
		acct.authToken = authToken
		return
	}
	f.accounts[sid] = &fakeTwilioAccount{sid: sid, authToken: authToken, created: time.Now().UTC()}
	f.accountOrder = append(f.accountOrder, sid)
}

// AddNumber gives accountSID the SMS/MMS-capable number e164 and returns its SID
// ("PN" + 32 hex digits). It panics when the account is unknown, the number is not
// E.164 or already taken, as those are mistakes in the test itself.
func (f *FakeTwilio) AddNumber(accountSID, e164 string) (phoneNumberSID string) {
	if !twilioE164.MatchString(e164) {
		panic(fmt.Sprintf("FakeTwilio.AddNumber: %q is not an E.164 number", e164))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.accounts[accountSID]; !ok {
		panic(fmt.Sprintf("FakeTwilio.AddNumber: unknown account %q, call AddAccount first", accountSID))
	}
	if f.numberLocked(e164) != nil {
		panic(fmt.Sprintf("FakeTwilio.AddNumber: %s was already added", e164))
	}
	now := time.Now().UTC()
	n := &fakeTwilioNumber{
		sid:                  newTwilioSID("PN"),
		accountSID:           accountSID,
		phoneNumber:          e164,
		friendlyName:         twilioFriendlyName(e164),
		smsMethod:            http.MethodPost,
		smsFallbackMethod:    http.MethodPost,
		voiceMethod:          http.MethodPost,
		voiceFallbackMethod:  http.MethodPost,
		statusCallbackMethod: http.MethodPost,
		created:              now,
		updated:              now,
	}
	f.numbers = append(f.numbers, n)
	return n.sid
}

// AddMessagingService creates a messaging service of accountSID sending from the given
// numbers (added with AddNumber) and returns its SID ("MG" + 32 hex digits). A message
// sent with only MessagingServiceSid goes out from the first of them.
func (f *FakeTwilio) AddMessagingService(accountSID string, senders ...string) (serviceSID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.accounts[accountSID]; !ok {
		panic(fmt.Sprintf("FakeTwilio.AddMessagingService: unknown account %q", accountSID))
	}
	if len(senders) == 0 {
		panic("FakeTwilio.AddMessagingService: a service needs at least one sender")
	}
	for _, s := range senders {
		if n := f.numberLocked(s); n == nil || n.accountSID != accountSID {
			panic(fmt.Sprintf("FakeTwilio.AddMessagingService: %s is not a number of %s", s, accountSID))
		}
	}
	svc := &fakeTwilioService{sid: newTwilioSID("MG"), accountSID: accountSID, senders: slices.Clone(senders)}
	f.services[svc.sid] = svc
	return svc.sid
}

// OptOut records that the recipient `to` texted STOP to the Twilio number `from`: from
// then on, sending from `from` (or a messaging service holding it) to `to` fails with
// 21610, as on Twilio. An inbound STOP through SendInbound does the same.
func (f *FakeTwilio) OptOut(from, to string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.optOuts[fakeTwilioPair{sender: from, recipient: to}] = true
}

// OptIn undoes OptOut, as the recipient texting START does.
func (f *FakeTwilio) OptIn(from, to string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.optOuts, fakeTwilioPair{sender: from, recipient: to})
}

// SetDeliveryOutcome sets how messages to the number `to` end: status "delivered" (the
// default), "undelivered" (after "sent") or "failed" (without "sent", as Twilio never
// handed it to a carrier), with errorCode such as 30003 (unreachable handset) or 30007
// (carrier filtering); errorCode 0 means 30008 (unknown error) for the failing ones.
func (f *FakeTwilio) SetDeliveryOutcome(to string, status string, errorCode int) {
	switch status {
	case "delivered":
		errorCode = 0
	case "undelivered", "failed":
		if errorCode == 0 {
			errorCode = twilioErrUnknownDeliveryFail
		}
	default:
		panic(fmt.Sprintf("FakeTwilio.SetDeliveryOutcome: status must be delivered, undelivered or failed, not %q", status))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes[to] = fakeTwilioOutcome{status: status, errorCode: errorCode}
}

// FailEveryNthSend makes every n-th POST .../Messages.json answer 503 with Twilio's
// error 20503 ("Service unavailable") and record nothing, as during a Twilio incident.
// n = 0 turns it off.
func (f *FakeTwilio) FailEveryNthSend(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failEvery, f.createCount = n, 0
}

// SetLatency sets how long every REST call takes, picked evenly between lo and hi
// (100-250 ms by default: real Twilio answers in 100-500 ms, and a fake that answers at
// once hides code that calls it one request at a time). SetLatency(0, 0) answers at once.
func (f *FakeTwilio) SetLatency(lo, hi time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latencyMin, f.latencyMax = lo, max(lo, hi)
}

// HangSends makes create-message requests to the number `to` wait d before they are
// answered (and the message created), as a stuck Twilio call does; 0 ends it. A caller
// that gives up first gets no answer and no message is created.
func (f *FakeTwilio) HangSends(to string, d time.Duration) { f.setHang(f.hangs, to, d) }

// HangAnswers makes create-message requests to the number `to` create the message at
// once but wait d before they are answered, as a Twilio call whose answer is lost on
// the way does; 0 ends it. A caller that gives up first gets no answer, and the message
// is sent all the same: only Twilio's message log tells it went.
func (f *FakeTwilio) HangAnswers(to string, d time.Duration) { f.setHang(f.answerHangs, to, d) }

func (f *FakeTwilio) setHang(hangs map[string]time.Duration, to string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d == 0 {
		delete(hangs, to)
	} else {
		hangs[to] = d
	}
}

// pace waits out the latency of one REST call (and a hang for to, if set); false when
// the caller gave up meanwhile.
func (f *FakeTwilio) pace(r *http.Request, to string) bool {
	f.mu.Lock()
	wait := f.latencyMin
	if f.latencyMax > f.latencyMin {
		wait += time.Duration(mrand.Int64N(int64(f.latencyMax - f.latencyMin)))
	}
	wait += f.hangs[to]
	f.mu.Unlock()
	if wait <= 0 {
		return true
	}
	select {
	case <-time.After(wait):
		return true
	case <-r.Context().Done():
		return false
	}
}

// SetCallbackDelay sets the pause before each status change of an accepted message
// (10 ms by default). Twilio's callbacks come well after its REST answer; the pause
// keeps that order in the common case without slowing tests down.
func (f *FakeTwilio) SetCallbackDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callbackDelay = d
}

// Messages returns a copy of every accepted outbound message, in order of acceptance.
func (f *FakeTwilio) Messages() []FakeMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.messagesLocked()
}

func (f *FakeTwilio) messagesLocked() []FakeMessage {
	out := make([]FakeMessage, len(f.messages))
	for i, m := range f.messages {
		out[i] = m.snapshot()
	}
	return out
}

// WaitForMessage returns the first accepted message for which match is true, waiting
// for one to arrive until ctx ends or the fake is closed. Messages are passed as they
// are now, so a match on Status sees status changes.
func (f *FakeTwilio) WaitForMessage(ctx context.Context, match func(FakeMessage) bool) (FakeMessage, error) {
	return fakeTwilioWait(ctx, f, f.messagesLocked, match, "message")
}

// StatusCallbacks returns a copy of every status callback posted so far, in order.
func (f *FakeTwilio) StatusCallbacks() []CallbackResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.callbacksLocked()
}

func (f *FakeTwilio) callbacksLocked() []CallbackResult {
	out := make([]CallbackResult, len(f.callbacks))
	for i, c := range f.callbacks {
		out[i] = c
		out[i].Params = cloneValues(c.Params)
	}
	return out
}

// WaitForStatusCallback returns the first posted status callback for which match is
// true, waiting for it until ctx ends or the fake is closed.
func (f *FakeTwilio) WaitForStatusCallback(ctx context.Context, match func(CallbackResult) bool) (CallbackResult, error) {
	return fakeTwilioWait(ctx, f, f.callbacksLocked, match, "status callback")
}

// fakeTwilioWait snapshots under the lock and matches outside it, so that match may
// call back into the fake. Every item is matched again after each change, as messages
// change status.
func fakeTwilioWait[T any](ctx context.Context, f *FakeTwilio, list func() []T, match func(T) bool, what string) (T, error) {
	for {
		f.mu.Lock()
		items := list()
		changed, closed := f.changed, f.closed
		f.mu.Unlock()
		for _, it := range items {
			if match(it) {
				return it, nil
			}
		}
		var zero T
		if closed {
			return zero, fmt.Errorf("no matching %s among %d: fake twilio was closed", what, len(items))
		}
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("no matching %s among %d: %w", what, len(items), ctx.Err())
		case <-changed:
		}
	}
}

// broadcastLocked wakes every waiter; f.mu must be held.
func (f *FakeTwilio) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *FakeTwilio) numberLocked(e164 string) *fakeTwilioNumber {
	for _, n := range f.numbers {
		if n.phoneNumber == e164 {
			return n
		}
	}
	return nil
}

func (m *fakeTwilioMessage) snapshot() FakeMessage {
	out := m.FakeMessage
	out.MediaURLs = slices.Clone(m.MediaURLs)
	return out
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// newTwilioSID returns prefix + 32 lower-case hex digits, the shape of every Twilio SID.
func newTwilioSID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// NewTwilioSID returns a random SID with the given two-letter prefix, such as
// NewTwilioSID("AC") for an account, to give tests realistic values.
func NewTwilioSID(prefix string) string { return newTwilioSID(prefix) }

var twilioNANP = regexp.MustCompile(`^\+1(\d{3})(\d{3})(\d{4})$`)

// twilioFriendlyName formats a number as Twilio's default friendly_name does.
func twilioFriendlyName(e164 string) string {
	if m := twilioNANP.FindStringSubmatch(e164); m != nil {
		return fmt.Sprintf("(%s) %s-%s", m[1], m[2], m[3])
	}
	return e164
}
