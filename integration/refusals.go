package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/carebridge/carebridge/database"
)

// Calls without a token the bridge knows are limited by client address before anything
// is written, and audited in aggregate: the first call of an address in a minute has its
// own `api call` row, as any call, and the others of that minute one row together, with
// their count, when the minute ends (each audit row takes the audit chain's lock, so a
// burst of bad tokens would otherwise be a burst of writes). A call with a good token is
// never held back by the refusals of its address; its integration's own limit applies.
// Calls with a good token refused before they run (the token lacks the scope, or the
// integration is over its rate limit) are audited in aggregate the same way, per
// integration and address, under the integration's name.
const (
	// refusedBurst bad-token calls from one address, then refusedPerMinute.
	refusedBurst     = 10
	refusedPerMinute = 30
	// refusalWindow is how long refusals from one address add up before their row.
	refusalWindow = time.Minute
	// maxRefusingClients bounds the addresses tracked; past it, new addresses share one
	// bucket (a flood from many addresses is limited as one).
	maxRefusingClients = 4096
	// idleClient is how long an address with nothing to report is kept.
	idleClient = 10 * time.Minute
)

// overflowClient is the address the ones past maxRefusingClients share.
const overflowClient = "other addresses"

// refusingKey is whose refusals add up: an address's calls without a known token
// (UnauthenticatedActor), or an integration's refused calls from one address.
type refusingKey struct {
	actor database.AuditActor
	addr  string
}

type refusingClient struct {
	limiter  *rate.Limiter // nil for an integration's refusals: its own bucket limits it
	lastSeen time.Time
	since    time.Time      // start of the minute being counted; zero: none
	counts   map[string]int // per answer ("401 invalid_token", "429 rate_limited")
}

// refusals limits and counts refused calls per client address.
type refusals struct {
	mu      sync.Mutex
	now     func() time.Time
	clients map[refusingKey]*refusingClient
	audit   func(ctx context.Context, e *database.AuditEntry) error
}

func newRefusals(now func() time.Time, audit func(ctx context.Context, e *database.AuditEntry) error) *refusals {
	return &refusals{now: now, clients: map[refusingKey]*refusingClient{}, audit: audit}
}

// clientAddress is the address a limit applies to: the connection's peer (RemoteAddr;
// X-Forwarded-For is anyone's to write), an IPv6 address as its /64.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	if addr.Is6() {
		prefix, _ := addr.Prefix(64)
		return prefix.String()
	}
	return addr.String()
}

// refuse counts a call refused for its token (answer names it, e.g. "401 invalid_token").
// It says whether the address is past its limit, and for how long (the call is then
// answered 429 instead), and whether the call starts the address's minute: that one is
// audited on its own (by the caller), the others are counted.
func (rf *refusals) refuse(ctx context.Context, addr, answer string) (wait time.Duration, limited, first bool) {
	return rf.count(ctx, refusingKey{database.UnauthenticatedActor, addr}, answer, true)
}

// refuseKnown counts a call with the integration's good token that was refused before it
// ran (answer names why, e.g. "403 insufficient_scope"). It says whether the call starts
// the integration's minute from that address: that one is audited on its own (by the
// caller), the others are counted. It never holds a call back: the integration's own
// limit does.
func (rf *refusals) refuseKnown(ctx context.Context, integration database.AuditActor, addr, answer string) (first bool) {
	_, _, first = rf.count(ctx, refusingKey{integration, addr}, answer, false)
	return first
}

func (rf *refusals) count(ctx context.Context, key refusingKey, answer string, limit bool) (wait time.Duration, limited, first bool) {
	now := rf.now()
	rf.mu.Lock()
	cl := rf.clients[key]
	if cl == nil {
		if len(rf.clients) >= maxRefusingClients {
			key.addr = overflowClient
			cl = rf.clients[key]
		}
		if cl == nil {
			cl = &refusingClient{counts: map[string]int{}}
			if limit { // known integrations have their own bucket
				cl.limiter = rate.NewLimiter(rate.Limit(float64(refusedPerMinute)/60), refusedBurst)
			}
			rf.clients[key] = cl
		}
	}
	cl.lastSeen = now
	if cl.limiter != nil {
		if res := cl.limiter.ReserveN(now, 1); res.DelayFrom(now) > 0 {
			wait = res.DelayFrom(now)
			res.CancelAt(now)
			limited = true
			answer = "429 rate_limited"
		}
	}
	var due *database.AuditEntry
	if !cl.since.IsZero() && now.Sub(cl.since) >= refusalWindow {
		due = cl.take(key, now)
	}
	if cl.since.IsZero() {
		cl.since, first = now, true
	} else {
		cl.counts[answer]++
	}
	rf.mu.Unlock()
	if due != nil {
		rf.write(ctx, due)
	}
	return wait, limited, first
}

// take ends the client's minute: it returns the row for the calls counted in it, if any.
func (cl *refusingClient) take(key refusingKey, now time.Time) *database.AuditEntry {
	total := 0
	answers := make([]string, 0, len(cl.counts))
	for answer, n := range cl.counts {
		total += n
		answers = append(answers, fmt.Sprintf("%s ×%d", answer, n))
	}
	sort.Strings(answers)
	window := now.Sub(cl.since).Round(time.Second)
	cl.since = time.Time{}
	clear(cl.counts)
	if total == 0 {
		return nil
	}
	return &database.AuditEntry{Actor: key.actor, Event: database.EventAPICallsRefused, Outcome: database.OutcomeRefused,
		Detail: fmt.Sprintf("%d more calls from %s in %s: %s", total, key.addr, window, strings.Join(answers, ", "))}
}

// flush writes the rows of windows that have ended (all of them when all is set), and
// forgets addresses idle long enough that their bucket is full again.
func (rf *refusals) flush(ctx context.Context, all bool) {
	now := rf.now()
	var due []*database.AuditEntry
	rf.mu.Lock()
	for key, cl := range rf.clients {
		if !cl.since.IsZero() && (all || now.Sub(cl.since) >= refusalWindow) {
			if e := cl.take(key, now); e != nil {
				due = append(due, e)
			}
		}
		if cl.since.IsZero() && now.Sub(cl.lastSeen) >= idleClient {
			delete(rf.clients, key)
		}
	}
	rf.mu.Unlock()
	for _, e := range due {
		rf.write(ctx, e)
	}
}

func (rf *refusals) write(ctx context.Context, e *database.AuditEntry) {
	// The error is the auditor's to log; a refused call is answered all the same.
	_ = rf.audit(context.WithoutCancel(ctx), e)
}

// run flushes ended windows until ctx ends, then everything.
func (rf *refusals) run(ctx context.Context) {
	tick := time.NewTicker(refusalWindow / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			rf.flush(ctx, true)
			return
		case <-tick.C:
			rf.flush(ctx, false)
		}
	}
}
