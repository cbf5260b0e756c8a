package twiliosim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// The simulator stands in for Twilio inside the bridge process, for `make demo` and tests,
// so that a clinic can try carebridge without a Twilio account. It has no real accounts and
// trusts every well-formed credential; its phone page has no login and shows every text
// sent to every simulated patient. Never mount it on a bridge that serves real patients.

// Credentials of the demo's simulated Twilio account. They are deliberately fake and grant
// nothing anywhere; the simulator accepts any well-formed pair anyway.
const (
	DemoAccountSID = "ACfeedface0000000000000000deadbeef"
	DemoAuthToken  = "deadbeef0000000000000000feedface"
)

// Bounds of the simulator's memory.
const (
	// simulatorInboxLimit is how many texts each patient number keeps per direction.
	simulatorInboxLimit = 500
	// simulatorThreadLimit is how many patient numbers are kept; the least recently
	// active is forgotten first.
	simulatorThreadLimit = 1000
)

// e164Pattern is the strict E.164 form the simulator accepts; it normalises nothing.
var e164Pattern = regexp.MustCompile(`^\+[1-9]\d{7,14}$`)

// Options configures the simulator.
type Options struct {
	// BasePath is where Handler is mounted on the bridge's HTTP server, e.g. "/_carebridge/simulator".
	BasePath string
	// PublicBase is the bridge's public URL (e.g. "http://127.0.0.1:29340"), for absolute media URLs.
	// When empty, the URL the page was requested with is used.
	PublicBase string
	// Deliver hands a simulated inbound text to the bridge exactly as a Twilio webhook's form
	// would arrive (MessageSid "SM…"/"MM…", AccountSid, From, To, Body, NumMedia, MediaUrlN,
	// MediaContentTypeN, plus the usual extra fields). The bridge stores it and answers; an
	// error means it was not stored and the page must say so. PostWebhook is a ready-made
	// Deliver that calls the clinic number's configured webhook, signed.
	Deliver func(ctx context.Context, form url.Values) error
	// StatusDelay is the pause before each status callback of a text the bridge sent;
	// 0 means DefaultStatusDelay.
	StatusDelay time.Duration
}

// Text is one text in the simulator: sent by the bridge to a patient's phone
// (see Inbox), or typed on the phone page by someone playing the patient.
type Text struct {
	SID       string    `json:"sid"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Body      string    `json:"body"`
	MediaURLs []string  `json:"media_urls,omitempty"`
	Time      time.Time `json:"time"`
	// StatusCallback is the URL the bridge asked for delivery updates; the simulator
	// posts them there.
	StatusCallback string `json:"status_callback,omitempty"`
	// Status and ErrorCode are where a text from the bridge is, as Twilio would report
	// it: queued, sent, then delivered, or undelivered with Twilio's error code.
	Status    string `json:"status,omitempty"`
	ErrorCode int    `json:"error_code,omitempty"`
	// mediaTypes are the content types of a patient's photos, for the message log.
	mediaTypes []string
}

func (t Text) clone() Text {
	t.MediaURLs = slices.Clone(t.MediaURLs)
	t.mediaTypes = slices.Clone(t.mediaTypes)
	return t
}

// Simulator is an sms.Provider that keeps texts in memory and shows them on a phone page
// instead of sending SMS. It is safe for concurrent use. Its own Provider methods act for
// the demo account (DemoAccountSID); Account gives the same simulator for other
// credentials.
type Simulator struct {
	basePath   string
	publicBase string
	deliver    func(ctx context.Context, form url.Values) error
	// csrfToken is embedded in the page's forms and required on POST. One per simulator
	// is enough: the page has no sessions and holds nothing secret from its visitors.
	csrfToken   string
	statusDelay time.Duration
	// ctx ends with Close, which stop cancels; callbacks counts the texts still reported on.
	ctx       context.Context
	stop      context.CancelFunc
	callbacks sync.WaitGroup

	mu sync.Mutex
	// threads are keyed by patient number.
	threads map[string]*simThread
	// numbers are the clinic numbers looked up, keyed by their PN SID.
	numbers map[string]*simNumber
	// clinics are the same numbers keyed by E.164: the account that linked each last.
	clinics map[string]*simNumber
	// lastClinic is the clinic number most recently linked (looked up or configured).
	lastClinic string
	media      simMediaStore
	// failures are the patient numbers FailNumber set, with their error code (0: delivered).
	failures map[string]int
}

// simThread is what one patient number's phone has seen.
type simThread struct {
	received []Text // from the bridge, oldest first
	sent     []Text // typed on the page, oldest first
	// version changes with every text either way and when one is not delivered; the page polls it.
	version    uint64
	lastActive time.Time
	// lastClinic is the clinic number this patient last exchanged a text with.
	lastClinic string
}

// simNumber is a clinic number of a simulated account.
type simNumber struct {
	sid        string
	e164       string
	accountSID string
	authToken  string
	smsURL     string
	// smsFallbackURL is recorded as Twilio records it; the simulator never fails over.
	smsFallbackURL string
}

// New builds an empty simulator. Close stops its status callbacks.
func New(opts Options) *Simulator {
	base := strings.TrimRight(opts.BasePath, "/")
	if base != "" && !strings.HasPrefix(base, "/") {
		base = "/" + base
	}
	statusDelay := opts.StatusDelay
	if statusDelay <= 0 {
		statusDelay = DefaultStatusDelay
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Simulator{
		basePath:    base,
		publicBase:  strings.TrimRight(opts.PublicBase, "/"),
		deliver:     opts.Deliver,
		csrfToken:   randomHex(32),
		statusDelay: statusDelay,
		ctx:         ctx,
		stop:        stop,
		threads:     make(map[string]*simThread),
		numbers:     make(map[string]*simNumber),
		clinics:     make(map[string]*simNumber),
		failures:    make(map[string]int),
	}
}

// Inbox returns the texts the patient's phone received, oldest first, at most the last 500.
func (s *Simulator) Inbox(phone string) []Text {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inboxLocked(phone)
}

func (s *Simulator) inboxLocked(phone string) []Text {
	th := s.threads[phone]
	if th == nil {
		return []Text{}
	}
	out := make([]Text, len(th.received))
	for i, t := range th.received {
		out[i] = t.clone()
	}
	return out
}

// threadLocked returns the patient's thread, creating it (and forgetting the least
// recently active one when there are too many).
func (s *Simulator) threadLocked(phone string) *simThread {
	if th := s.threads[phone]; th != nil {
		return th
	}
	if len(s.threads) >= simulatorThreadLimit {
		var oldest string
		var oldestAt time.Time
		for p, th := range s.threads {
			if oldest == "" || th.lastActive.Before(oldestAt) {
				oldest, oldestAt = p, th.lastActive
			}
		}
		delete(s.threads, oldest)
	}
	th := &simThread{}
	s.threads[phone] = th
	return th
}

// addReceivedLocked stores a text the bridge sent to the patient text.To.
func (s *Simulator) addReceivedLocked(text Text) {
	th := s.threadLocked(text.To)
	th.received = appendBounded(th.received, text)
	th.version++
	th.lastActive = text.Time
	th.lastClinic = text.From
}

// addSentLocked stores a text the patient text.From sent from the page.
func (s *Simulator) addSentLocked(text Text) {
	th := s.threadLocked(text.From)
	th.sent = appendBounded(th.sent, text)
	th.version++
	th.lastActive = text.Time
	th.lastClinic = text.To
}

func appendBounded(list []Text, text Text) []Text {
	list = append(list, text)
	if over := len(list) - simulatorInboxLimit; over > 0 {
		list = slices.Delete(list, 0, over)
	}
	return list
}

// randomHex returns n random bytes in hex. crypto/rand never fails on supported systems.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newSimulatedSID is a Twilio-shaped SID: the prefix and 32 lower-case hex digits.
func newSimulatedSID(prefix string) string {
	return prefix + randomHex(16)
}

// truncate cuts what a caller sent down to n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
