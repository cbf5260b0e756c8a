package securechat

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/database"
)

// The lockout and the code-send limits must hold when requests arrive at once, in one
// process or in several `carebridge web` replicas over one database. These tests send
// bursts from many goroutines through several services sharing the database.

const burst = 40

// countingMetrics counts what the service reports, from any goroutine.
type countingMetrics struct {
	sent, rateLimited, wrong, expired, locked atomic.Int64
}

func (m *countingMetrics) CodeSent(err error) {
	if err == nil {
		m.sent.Add(1)
	}
}
func (m *countingMetrics) CodeRateLimited() { m.rateLimited.Add(1) }
func (m *countingMetrics) CodeFailed(reason string) {
	if reason == "wrong" {
		m.wrong.Add(1)
	} else {
		m.expired.Add(1)
	}
}
func (m *countingMetrics) LinkLocked() { m.locked.Add(1) }

// slowBackend is coreBackend with a Twilio that takes a moment to answer.
type slowBackend struct {
	coreBackend
	delay time.Duration
}

func (b *slowBackend) SendSMS(ctx context.Context, conv *database.Conversation, text string) error {
	time.Sleep(b.delay)
	return b.coreBackend.SendSMS(ctx, conv, text)
}

// slowDatabase answers every statement a moment late, as a loaded server does, which
// widens any window between a read and the write that depends on it.
type slowDatabase struct {
	dbutil.DatabaseLogger
}

func (l slowDatabase) QueryTiming(ctx context.Context, method, query string, args []any, nrows int, d time.Duration, err error) {
	time.Sleep(2 * time.Millisecond)
	l.DatabaseLogger.QueryTiming(ctx, method, query, args, nrows, d, err)
}

// replicas returns n services over the fixture's database (the first is the fixture's
// own), as n web processes would be, sharing one metrics counter, a slow backend and a
// slow database.
func (f *coreFixture) replicas(t *testing.T, n int) ([]*Service, *countingMetrics, *slowBackend) {
	f.svc.DB.Log = slowDatabase{f.svc.DB.Log}
	metrics := &countingMetrics{}
	backend := &slowBackend{delay: 20 * time.Millisecond}
	services := []*Service{f.svc}
	for len(services) < n {
		svc, err := NewService(f.svc.DB, f.svc.Config, f.svc.ClinicName, f.svc.PublicBase)
		require.NoError(t, err)
		services = append(services, svc)
	}
	for _, svc := range services {
		svc.Backend, svc.Metrics = backend, metrics
		svc.Now = func() time.Time { return f.clock }
	}
	return services, metrics, backend
}

// atOnce runs fn(i) for i in [0, n) in n goroutines released together.
func atOnce(n int, fn func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			fn(i)
		}()
	}
	start.Done()
	done.Wait()
}

// guessCode returns a 6-digit code that differs from right.
func guessCode(right string, i int) string {
	for {
		code := fmt.Sprintf("%06d", (i*7919+1)%1_000_000)
		if code != right {
			return code
		}
		i++
	}
}

func (f *coreFixture) failedCodes(t *testing.T, token string) *database.SecureLink {
	link, err := f.svc.CheckLink(context.Background(), token)
	if link == nil {
		require.NoError(t, err)
	}
	return link.Row
}

func (f *coreFixture) auditCount(t *testing.T, event database.AuditEvent) int {
	entries, err := f.svc.DB.Audit.Find(context.Background(), f.conv.LoginID, f.conv.PortalID, event)
	require.NoError(t, err)
	return len(entries)
}

func TestWrongCodesLockTheLinkUnderConcurrency(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		services, metrics, backend := f.replicas(t, 4)
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		right := backend.lastCode(t)

		var wrong, locked, other atomic.Int64
		atOnce(burst, func(i int) {
			_, _, err := services[i%len(services)].Verify(ctx, token, guessCode(right, i), "")
			switch {
			case errIs(err, ErrWrongCode):
				wrong.Add(1)
			case errIs(err, ErrLinkLocked):
				locked.Add(1)
			default:
				other.Add(1)
				t.Errorf("unexpected answer to a wrong code: %v", err)
			}
		})
		maxWrong := int64(f.svc.Config.MaxWrongCodes)
		assert.LessOrEqual(t, metrics.wrong.Load(), maxWrong, "at most %d wrong codes are ever compared", maxWrong)
		assert.Equal(t, maxWrong-1, wrong.Load(), "the first four wrong codes are answered as wrong")
		assert.Equal(t, int64(burst)-(maxWrong-1), locked.Load(), "every other answer is: locked")
		assert.EqualValues(t, 1, metrics.locked.Load(), "the link is locked once")
		assert.Equal(t, 4, f.auditCount(t, "code failed"))
		assert.Equal(t, 1, f.auditCount(t, "code locked"))
		row := f.failedCodes(t, token)
		assert.Equal(t, int(maxWrong), row.FailedCodes)
		assert.False(t, row.LockedAt.IsZero(), "the link is locked")

		_, _, err := f.svc.Verify(ctx, token, right, "")
		assert.ErrorIs(t, err, ErrLinkLocked, "the right code after the burst fails")
		assert.Zero(t, f.auditCount(t, "session started"))
	})
}

func TestRightCodeInABurstIsNotCountedAsWrong(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		services, _, backend := f.replicas(t, 4)
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		right := backend.lastCode(t)

		// Four wrong codes and the right one at once stay within the five tries.
		var sessions atomic.Int64
		atOnce(5, func(i int) {
			code := right
			if i > 0 {
				code = guessCode(right, i)
			}
			session, _, err := services[i%len(services)].Verify(ctx, token, code, "")
			if i == 0 {
				assert.NoError(t, err, "the right code")
				if session != "" {
					sessions.Add(1)
				}
			} else {
				assert.ErrorIs(t, err, ErrWrongCode)
			}
		})
		assert.EqualValues(t, 1, sessions.Load())
		row := f.failedCodes(t, token)
		assert.Equal(t, 4, row.FailedCodes, "the right code gave its try back")
		assert.True(t, row.LockedAt.IsZero(), "four wrong codes do not lock")

		// The same right code sent many times at once starts one session; the replays
		// are wrong codes, and never more than the lockout allows are compared.
		require.NoError(t, f.svc.Unlock(ctx, f.conv, testNurse))
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		right = backend.lastCode(t)
		sessions.Store(0)
		atOnce(burst, func(i int) {
			session, _, err := services[i%len(services)].Verify(ctx, token, right, "")
			if err == nil && session != "" {
				sessions.Add(1)
			} else {
				assert.True(t, errIs(err, ErrWrongCode, ErrLinkLocked), "replay answered with %v", err)
			}
		})
		assert.EqualValues(t, 1, sessions.Load(), "a code starts one session")
		assert.LessOrEqual(t, f.failedCodes(t, token).FailedCodes, f.svc.Config.MaxWrongCodes)
	})
}

func TestDateOfBirthGuessesLockTheLinkUnderConcurrency(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		services, metrics, backend := f.replicas(t, 4)
		require.NoError(t, f.svc.SetDOB(ctx, f.conv, "1980-02-03", testNurse))
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		right := backend.lastCode(t)

		// Someone holding the phone's code (a mistyped number) guesses dates of birth.
		var sessions atomic.Int64
		start := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)
		atOnce(burst, func(i int) {
			dob := start.AddDate(0, 0, i).Format("2006-01-02")
			session, _, err := services[i%len(services)].Verify(ctx, token, right, dob)
			if err == nil && session != "" {
				sessions.Add(1)
			} else {
				assert.True(t, errIs(err, ErrWrongCode, ErrLinkLocked), "wrong date of birth answered with %v", err)
			}
		})
		assert.Zero(t, sessions.Load())
		assert.LessOrEqual(t, metrics.wrong.Load(), int64(f.svc.Config.MaxWrongCodes), "at most five dates of birth are compared")
		row := f.failedCodes(t, token)
		assert.Equal(t, f.svc.Config.MaxWrongCodes, row.FailedCodes)
		assert.False(t, row.LockedAt.IsZero())

		_, _, err := f.svc.Verify(ctx, token, right, "1980-02-03")
		assert.ErrorIs(t, err, ErrLinkLocked, "the right date of birth after the burst fails")
	})
}

func TestCodeSendLimitHoldsUnderConcurrency(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		services, metrics, backend := f.replicas(t, 4)
		token := f.link(t)
		var sent, limited atomic.Int64
		atOnce(burst, func(i int) {
			err := services[i%len(services)].SendCode(ctx, token, "en")
			switch {
			case err == nil:
				sent.Add(1)
			case errIs(err, ErrRateLimited):
				limited.Add(1)
			default:
				t.Errorf("unexpected answer to a code request: %v", err)
			}
		})
		perHour := f.svc.Config.CodesPerHour
		assert.EqualValues(t, perHour, sent.Load(), "five codes per hour per link")
		assert.EqualValues(t, burst-perHour, limited.Load())
		assert.EqualValues(t, perHour, metrics.sent.Load())
		backend.mu.Lock()
		assert.Equal(t, perHour, len(backend.texts), "five texts reached the phone")
		backend.mu.Unlock()
		assert.Equal(t, perHour, f.auditCount(t, "code issued"))
	})
}

func TestCodeSendLimitPerNumberHoldsUnderConcurrency(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		services, _, backend := f.replicas(t, 4)
		// The same patient number in a second clinic number's conversation.
		other, err := f.svc.DB.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: "15550002222",
			PortalID: "15551234567", ClinicPhone: "+15550002222", PatientPhone: f.conv.PatientPhone, Mode: database.ModeSecure})
		require.NoError(t, err)
		var tokens []string
		for i := range 8 {
			conv := f.conv
			if i%2 == 1 {
				conv = other
			}
			url, err := f.svc.IssueLink(ctx, conv, testNurse)
			require.NoError(t, err)
			tokens = append(tokens, url[len("https://clinic.example/s/"):])
		}
		var sent atomic.Int64
		atOnce(burst, func(i int) {
			err := services[i%len(services)].SendCode(ctx, tokens[i%len(tokens)], "en")
			if err == nil {
				sent.Add(1)
			} else {
				assert.ErrorIs(t, err, ErrRateLimited)
			}
		})
		assert.EqualValues(t, f.svc.Config.CodesPerHour, sent.Load(), "five codes per hour per number, across links and clinic numbers")
		backend.mu.Lock()
		assert.Equal(t, f.svc.Config.CodesPerHour, len(backend.texts))
		backend.mu.Unlock()
	})
}
