package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

// TestBadTokensAreLimitedByAddressAndAuditedInAggregate: 300 calls with bad tokens in one
// burst from one address write two audit rows (the first call's, then one with the count
// of the others when the minute ends), not 300; past the address's limit they are answered
// 429 with Retry-After; a good token from the same address still works. Each database.
func TestBadTokensAreLimitedByAddressAndAuditedInAggregate(t *testing.T) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) { runBadTokenBurst(t, kind) })
	}
}

func runBadTokenBurst(t *testing.T, kind string) {
	ctx := context.Background()
	spec := testenv.NewDatabase(t, kind)
	raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
	require.NoError(t, err)
	db := database.New(raw, zerolog.Nop())
	require.NoError(t, db.Upgrade(ctx))
	t.Cleanup(func() { _ = raw.Close() })

	const good = "cbt_test-ehr-token-0123456789abcdefghijklmnopqrstuv"
	sum := sha256.Sum256([]byte(good))
	var clock sync.Mutex
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	s := NewServer(Options{DB: db, Log: zerolog.Nop(),
		Integrations: []config.IntegrationConfig{{Name: "ehr", TokenSHA256: hex.EncodeToString(sum[:]),
			Scopes: []string{config.ScopeConversationsRead}, RateLimit: config.RateLimitConfig{PerMinute: 600, Burst: 100}}},
		Now: func() time.Time { clock.Lock(); defer clock.Unlock(); return now },
	})
	mux := http.NewServeMux()
	s.Register(mux)
	call := func(token, from string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, RESTPrefix+"/conversations/conv_000000000000000000000000", nil)
		r.RemoteAddr = from
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	auditRows := func() int {
		n, err := db.Audit.Count(ctx, time.Time{}, time.Time{})
		require.NoError(t, err)
		return n
	}

	// The burst, at once, in parallel, as the review sent it.
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	var retryAfter []string
	for i := range 300 {
		wg.Go(func() {
			token := "cbt_wrong-" + strconv.Itoa(i)
			if i%3 == 0 {
				token = ""
			}
			w := call(token, "203.0.113.7:"+strconv.Itoa(40000+i))
			mu.Lock()
			defer mu.Unlock()
			statuses[w.Code]++
			if w.Code == http.StatusTooManyRequests {
				retryAfter = append(retryAfter, w.Header().Get("Retry-After"))
			}
		})
	}
	wg.Wait()
	assert.Equal(t, refusedBurst, statuses[http.StatusUnauthorized], "the address's burst is answered 401")
	assert.Equal(t, 300-refusedBurst, statuses[http.StatusTooManyRequests], "then 429: %v", statuses)
	for _, ra := range retryAfter {
		seconds, err := strconv.Atoi(ra)
		require.NoError(t, err, "Retry-After %q", ra)
		assert.True(t, seconds >= 1 && seconds <= 60, "Retry-After %d", seconds)
	}
	assert.Equal(t, 1, auditRows(), "the first refusal is audited, the others are counted")
	first, err := db.Audit.Find(ctx, "", "", "api call")
	require.NoError(t, err)
	require.Len(t, first, 1)
	assert.Equal(t, database.UnauthenticatedActor, first[0].Actor)
	assert.Equal(t, "GET /_carebridge/api/v1/conversations/{id} 401", first[0].Detail)

	// A good token from the same address is not held back, and is audited as always.
	w := call(good, "203.0.113.7:51000")
	assert.Equal(t, http.StatusNotFound, w.Code, w.Body.String())
	assert.Equal(t, 2, auditRows())
	// Another address has its own limit, and its own first row.
	assert.Equal(t, http.StatusUnauthorized, call("cbt_wrong", "198.51.100.2:443").Code)
	assert.Equal(t, 3, auditRows())

	// The minute ends: one row for the address's other 299 calls, with their answers.
	clock.Lock()
	now = now.Add(refusalWindow)
	clock.Unlock()
	s.refused.flush(ctx, false)
	rows, err := db.Audit.Find(ctx, "", "", "api calls refused")
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, database.UnauthenticatedActor, rows[0].Actor)
	assert.Equal(t, database.OutcomeRefused, rows[0].Outcome)
	assert.Regexp(t, `^299 more calls from 203\.0\.113\.7 in 1m0s: 401 invalid_token ×\d, 401 missing_token ×\d, 429 rate_limited ×290$`, rows[0].Detail)
	assert.Equal(t, 4, auditRows())

	// The bucket refills: after the minute, the address may try again; what is left is
	// audited when the server stops.
	assert.Equal(t, http.StatusUnauthorized, call("cbt_wrong", "203.0.113.7:40000").Code)
	assert.Equal(t, http.StatusUnauthorized, call("", "203.0.113.7:40000").Code)
	assert.Equal(t, 5, auditRows())
	s.Stop()
	assert.Equal(t, 6, auditRows())
	n, err := db.Audit.Verify(ctx)
	require.NoError(t, err)
	assert.Equal(t, 6, n, "the chain holds")
}

func TestClientAddress(t *testing.T) {
	for remote, want := range map[string]string{
		"203.0.113.7:40000":                  "203.0.113.7",
		"[2001:db8:1:2:3:4:5:6]:443":         "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:4:5:6]:443":      "2001:db8:1:2::/64",
		"[::ffff:203.0.113.7]:80":            "203.0.113.7",
		"@":                                  "@",
		strings.Repeat("x", 3) + ":notaport": "xxx",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "192.0.2.1")
		assert.Equal(t, want, clientAddress(r), remote)
	}
}

// TestRefusalsStayBounded: a flood from many addresses tracks at most maxRefusingClients
// of them (the rest share one bucket and one row), and idle addresses are forgotten.
func TestRefusalsStayBounded(t *testing.T) {
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	var rows []*database.AuditEntry
	rf := newRefusals(func() time.Time { return now }, func(_ context.Context, e *database.AuditEntry) error {
		rows = append(rows, e)
		return nil
	})
	ctx := context.Background()
	firsts, limited := 0, 0
	for i := range maxRefusingClients + 1000 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
		_, l, first := rf.refuse(ctx, addr, "401 invalid_token")
		if first {
			firsts++
		}
		if l {
			limited++
		}
	}
	assert.Len(t, rf.clients, maxRefusingClients+1, "the tracked addresses and the shared bucket")
	assert.Equal(t, maxRefusingClients+1, firsts, "one first row per tracked address, one for the rest")
	assert.Equal(t, 1000-refusedBurst, limited, "the rest share one bucket")
	now = now.Add(refusalWindow)
	rf.flush(ctx, false)
	require.Len(t, rows, 1)
	assert.Equal(t, "999 more calls from other addresses in 1m0s: 401 invalid_token ×9, 429 rate_limited ×990", rows[0].Detail)
	now = now.Add(idleClient)
	rf.flush(ctx, false)
	assert.Empty(t, rf.clients, "idle addresses are forgotten")
}

// TestRefusedScopeIsAuditedInAggregate: a good token without the scope, called 60 times in
// one burst, is answered 403 each time and writes two audit rows under the integration's
// name (the first call's, then one with the count of the others when the minute ends), not
// 60; calls over the integration's rate limit add up the same way; a call within its
// scope is audited on its own as always. Each database.
func TestRefusedScopeIsAuditedInAggregate(t *testing.T) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) { runRefusedScope(t, kind) })
	}
}

func runRefusedScope(t *testing.T, kind string) {
	ctx := context.Background()
	spec := testenv.NewDatabase(t, kind)
	raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
	require.NoError(t, err)
	db := database.New(raw, zerolog.Nop())
	require.NoError(t, db.Upgrade(ctx))
	t.Cleanup(func() { _ = raw.Close() })

	const reader, limited = "cbt_test-reader-token-0123456789abcdefghijklmnopq", "cbt_test-limited-token-0123456789abcdefghijklmnop"
	hash := func(token string) string { sum := sha256.Sum256([]byte(token)); return hex.EncodeToString(sum[:]) }
	var clock sync.Mutex
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	s := NewServer(Options{DB: db, Log: zerolog.Nop(), Integrations: []config.IntegrationConfig{
		{Name: "reader", TokenSHA256: hash(reader), Scopes: []string{config.ScopeConversationsRead},
			RateLimit: config.RateLimitConfig{PerMinute: 6000, Burst: 1000}},
		{Name: "limited", TokenSHA256: hash(limited), Scopes: []string{config.ScopeConversationsRead},
			RateLimit: config.RateLimitConfig{PerMinute: 1, Burst: 2}},
	}, Now: func() time.Time { clock.Lock(); defer clock.Unlock(); return now }})
	mux := http.NewServeMux()
	s.Register(mux)
	call := func(token, method, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(`{"patient":{"phone":"+15551234567"},"text":"Hi"}`))
		r.RemoteAddr = "203.0.113.7:40000"
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	auditRows := func() int {
		n, err := db.Audit.Count(ctx, time.Time{}, time.Time{})
		require.NoError(t, err)
		return n
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 60 {
		wg.Go(func() {
			w := call(reader, http.MethodPost, RESTPrefix+"/conversations")
			mu.Lock()
			defer mu.Unlock()
			statuses[w.Code]++
		})
	}
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusForbidden: 60}, statuses, "each call is answered 403 all the same")
	assert.Equal(t, 1, auditRows(), "the first refusal is audited, the others are counted")
	first, err := db.Audit.Find(ctx, "", "", database.EventAPICall)
	require.NoError(t, err)
	require.Len(t, first, 1)
	assert.Equal(t, database.IntegrationActor("reader"), first[0].Actor)
	assert.Equal(t, database.OutcomeRefused, first[0].Outcome)
	assert.Equal(t, "POST /_carebridge/api/v1/conversations 403", first[0].Detail)

	// Within its scope, the same token is audited call by call.
	assert.Equal(t, http.StatusNotFound, call(reader, http.MethodGet, RESTPrefix+"/conversations/conv_000000000000000000000000").Code)
	assert.Equal(t, 2, auditRows())

	// Over its rate limit: the burst of 2 is audited as always, then the 429s add up.
	for i := range 12 {
		want := http.StatusTooManyRequests
		if i < 2 {
			want = http.StatusNotFound
		}
		assert.Equal(t, want, call(limited, http.MethodGet, RESTPrefix+"/conversations/conv_000000000000000000000000").Code, "call %d", i+1)
	}
	assert.Equal(t, 5, auditRows(), "two calls within the limit, the first one over it")

	clock.Lock()
	now = now.Add(refusalWindow)
	clock.Unlock()
	s.refused.flush(ctx, false)
	rows, err := db.Audit.Find(ctx, "", "", database.EventAPICallsRefused)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	details := map[database.AuditActor]string{rows[0].Actor: rows[0].Detail, rows[1].Actor: rows[1].Detail}
	assert.Equal(t, map[database.AuditActor]string{
		database.IntegrationActor("reader"):  "59 more calls from 203.0.113.7 in 1m0s: 403 insufficient_scope ×59",
		database.IntegrationActor("limited"): "9 more calls from 203.0.113.7 in 1m0s: 429 rate_limited ×9",
	}, details)
	s.Stop()
	n, err := db.Audit.Verify(ctx)
	require.NoError(t, err)
	assert.Equal(t, 7, n, "the chain holds")
}
