package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

// The catch-up's figures, as the tests expect them: the log is read again from 2 minutes
// before the mark, never further back than 6 days (receipts are kept 7), and a text's
// status is asked for once it is 2 minutes overdue and at most 3 days old.
const (
	margin  = 2 * time.Minute
	window  = 6 * 24 * time.Hour
	overdue = 2 * time.Minute
)

const clinicPhone = "+" + clinic

// catchUpOutbox is an outbox that is not started: the catch-up needs no workers.
func (e *env) catchUpOutbox() *outbox.Outbox {
	return outbox.New(outbox.Options{DB: e.db, Config: e.cfg, Accounts: accounts{e.provider}, Sealer: plainSealer{},
		Hooks: e.hooks, Log: zerolog.Nop()})
}

// storedText is a text the catch-up handed over, and when it was stored as received.
type storedText struct {
	sid string
	at  time.Time
}

// receipts stores what the catch-up hands over as the bridge does: a receipt, except for
// texts from senders that are not phone numbers (short codes), which it declines.
type receipts struct {
	db       *database.Database
	kept     []storedText
	declined []string
	fail     map[string]error
}

func (r *receipts) store(ctx context.Context, m *sms.LoggedMessage, at time.Time) (bool, error) {
	if err := r.fail[m.SID]; err != nil {
		return false, err
	}
	if len(m.From) < 10 {
		r.declined = append(r.declined, m.SID)
		return false, nil
	}
	if _, err := r.db.Receipt.Insert(ctx, &database.Receipt{MessageSID: m.SID, LoginID: clinic, PatientPhone: m.From,
		Params: url.Values{"Body": {m.Body}}, ReceivedAt: at}); err != nil {
		return false, err
	}
	r.kept = append(r.kept, storedText{m.SID, at})
	return true, nil
}

func sid(n int) string { return fmt.Sprintf("SM%032d", n) }

func received(n int, from string, at time.Time) *sms.LoggedMessage {
	return &sms.LoggedMessage{SID: sid(n), AccountSID: "AC00000000000000000000000000000001", From: from, To: clinicPhone,
		Body: fmt.Sprintf("text %d", n), Direction: "inbound", Status: "received", NumSegments: 1, DateCreated: at, DateSent: at}
}

func syncedUntil(t *testing.T, e *env) time.Time {
	mark, ok, err := e.db.TwilioSync.SyncedUntil(context.Background(), clinic)
	require.NoError(t, err)
	require.True(t, ok, "the number has a mark")
	return mark
}

func TestCatchUpStoresTheMissedTextsOnceInTwilioOrder(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		linked := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
		require.NoError(t, e.db.TwilioSync.Init(ctx, clinic, linked))
		// Twilio's dates have whole seconds: several texts share one.
		t0 := time.Now().Add(-90 * time.Second).Truncate(time.Second)
		receiving := received(4, patient(2), t0.Add(time.Second))
		receiving.Status = "receiving" // an MMS whose media Twilio is still fetching
		e.provider.inbound = []*sms.LoggedMessage{
			received(1, patient(1), t0), // its webhook stored it
			received(2, patient(1), t0),
			received(3, patient(2), t0.Add(time.Second)),
			receiving,
			received(5, patient(3), t0.Add(time.Second)),
			received(6, "22395", t0.Add(2*time.Second)), // a short code: not for a conversation
			received(7, patient(1), t0.Add(2*time.Second)),
		}
		byWebhook := t0.Add(300 * time.Millisecond)
		_, err := e.db.Receipt.Insert(ctx, &database.Receipt{MessageSID: sid(1), LoginID: clinic, PatientPhone: patient(1),
			Params: url.Values{}, ReceivedAt: byWebhook})
		require.NoError(t, err)

		r := &receipts{db: e.db}
		o := e.catchUpOutbox()
		began := time.Now().Truncate(time.Millisecond)
		require.NoError(t, o.CatchUpInbound(ctx, clinic, clinicPhone, r.store))
		ended := time.Now()

		require.Len(t, e.provider.listed, 1)
		assert.Equal(t, listCall{to: clinicPhone, since: linked.Add(-margin)}, e.provider.listed[0],
			"the clinic number's log is read from the margin before the mark")
		assert.Equal(t, []storedText{
			{sid(2), byWebhook.Add(time.Millisecond)}, // just after the text before it, which the webhook stored
			{sid(3), t0.Add(time.Second)},
			{sid(5), t0.Add(time.Second + time.Millisecond)},
			{sid(7), t0.Add(2 * time.Second)}, // the short code's text took no place
		}, r.kept, "each missed text once, in Twilio's order")
		assert.Equal(t, []string{sid(6)}, r.declined)
		mark := syncedUntil(t, e)
		assert.False(t, mark.Before(began) || mark.After(ended), "the mark moved to when the read began: %s", mark)

		// The next read overlaps this one by the margin and stores nothing twice.
		require.NoError(t, o.CatchUpInbound(ctx, clinic, clinicPhone, r.store))
		require.Len(t, e.provider.listed, 2)
		assert.Equal(t, mark.Add(-margin), e.provider.listed[1].since)
		assert.Len(t, r.kept, 4, "nothing stored again")
		assert.Equal(t, []string{sid(6), sid(6)}, r.declined, "only the declined text was offered again")
	})
}

func TestCatchUpReadsNoFurtherBackThanTheReceiptsKept(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		require.NoError(t, e.db.TwilioSync.Init(ctx, clinic, time.Now().Add(-30*24*time.Hour)))
		r := &receipts{db: e.db}
		before := time.Now()
		require.NoError(t, e.catchUpOutbox().CatchUpInbound(ctx, clinic, clinicPhone, r.store))
		require.Len(t, e.provider.listed, 1)
		// An older text's receipt would be gone: it would be delivered a second time.
		assert.WithinDuration(t, before.Add(-window), e.provider.listed[0].since, time.Second)
		assert.WithinDuration(t, before, syncedUntil(t, e), time.Second)
	})
}

func TestCatchUpOfANumberNeverReadStartsAtItsNewestText(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o := e.catchUpOutbox()
		r := &receipts{db: e.db}
		// No mark and no text: a number just linked is read from now (less the margin).
		before := time.Now()
		require.NoError(t, o.CatchUpInbound(ctx, clinic, clinicPhone, r.store))
		require.Len(t, e.provider.listed, 1)
		assert.WithinDuration(t, before.Add(-margin), e.provider.listed[0].since, time.Second)

		// A number linked by a version that kept no mark: from its newest stored text.
		const other = "15550002222"
		newest := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		for i, at := range []time.Time{newest.Add(-time.Hour), newest} {
			_, err := e.db.Receipt.Insert(ctx, &database.Receipt{MessageSID: sid(100 + i), LoginID: other,
				PatientPhone: patient(1), Params: url.Values{}, ReceivedAt: at})
			require.NoError(t, err)
		}
		anyNumber := outbox.New(outbox.Options{DB: e.db, Config: e.cfg, Accounts: allAccounts{e.provider}, Log: zerolog.Nop()})
		require.NoError(t, anyNumber.CatchUpInbound(ctx, other, "+"+other, r.store))
		require.Len(t, e.provider.listed, 2)
		assert.Equal(t, listCall{to: "+" + other, since: newest.Add(-margin)}, e.provider.listed[1])
	})
}

// allAccounts links every number to one provider.
type allAccounts struct{ p sms.Provider }

func (a allAccounts) Provider(context.Context, string) (sms.Provider, error) { return a.p, nil }

func TestCatchUpThatFailsKeepsTheMarkAndResumes(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		linked := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
		require.NoError(t, e.db.TwilioSync.Init(ctx, clinic, linked))
		t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
		e.provider.inbound = []*sms.LoggedMessage{received(1, patient(1), t0), received(2, patient(1), t0.Add(time.Second)),
			received(3, patient(1), t0.Add(2*time.Second))}
		o := e.catchUpOutbox()

		// Twilio unreachable.
		unreachable := errors.New("Get \"https://api.twilio.com/...\": dial tcp: i/o timeout")
		e.provider.inboundErr = unreachable
		r := &receipts{db: e.db, fail: map[string]error{}}
		assert.ErrorIs(t, o.CatchUpInbound(ctx, clinic, clinicPhone, r.store), unreachable)
		assert.Equal(t, linked, syncedUntil(t, e), "the mark stays")

		// The database refuses the second text: the first is stored, the mark stays.
		e.provider.inboundErr = nil
		full := errors.New("disk full")
		r.fail[sid(2)] = full
		assert.ErrorIs(t, o.CatchUpInbound(ctx, clinic, clinicPhone, r.store), full)
		assert.Equal(t, linked, syncedUntil(t, e), "the mark stays")
		assert.Equal(t, []storedText{{sid(1), t0}}, r.kept)

		// The retry reads from the same mark and stores the rest, once.
		delete(r.fail, sid(2))
		require.NoError(t, o.CatchUpInbound(ctx, clinic, clinicPhone, r.store))
		assert.Equal(t, linked.Add(-margin), e.provider.listed[2].since)
		assert.Equal(t, []storedText{{sid(1), t0}, {sid(2), t0.Add(time.Second)}, {sid(3), t0.Add(2 * time.Second)}}, r.kept)
		assert.True(t, syncedUntil(t, e).After(linked), "the mark moved on")
	})
}

func TestCatchUpOfANumberNotLinkedReadsNothing(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const gone = "15559990000"
		r := &receipts{db: e.db}
		o := e.catchUpOutbox()
		assert.ErrorIs(t, o.CatchUpInbound(ctx, gone, "+"+gone, r.store), outbox.ErrNotLinked)
		_, ok, err := e.db.TwilioSync.SyncedUntil(ctx, gone)
		require.NoError(t, err)
		assert.False(t, ok, "no mark recorded for a read that did not happen")
		assert.Empty(t, e.provider.listed)

		// Statuses: nothing owed, nothing asked; a text owed its status needs the number.
		require.NoError(t, o.CatchUpStatuses(ctx, gone, time.Now(), func(context.Context, *sms.StatusCallback) error { return nil }))
		require.NoError(t, e.db.Outbound.Insert(ctx, &database.Outbound{MessageSID: sid(1), LoginID: gone, PortalID: patient(1)[1:],
			Status: "sent", CreatedAt: time.Now().Add(-time.Hour)}))
		assert.ErrorIs(t, o.CatchUpStatuses(ctx, gone, time.Now(), func(context.Context, *sms.StatusCallback) error { return nil }),
			outbox.ErrNotLinked)
		assert.Empty(t, e.provider.fetched)
	})
}

// statuses applies status callbacks as the bridge does: the text's recorded status moves on.
type statuses struct {
	db      *database.Database
	applied []sms.StatusCallback
}

func (s *statuses) apply(ctx context.Context, cb *sms.StatusCallback) error {
	out, err := s.db.Outbound.Get(ctx, cb.MessageSID)
	if err != nil {
		return err
	}
	kept, _ := sms.StatusesNotSuperseded(cb.Status)
	if _, err = s.db.Outbound.AdvanceStatus(ctx, cb.MessageSID, out.LoginID, cb.Status, cb.ErrorCode, kept); err != nil {
		return err
	}
	s.applied = append(s.applied, *cb)
	return nil
}

func TestCatchUpAppliesTheOverdueStatusesThatMoveATextOn(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		now := time.Now()
		texts := []struct {
			n       int
			login   string
			status  string
			age     time.Duration
			twilio  string // the status Twilio holds; "" when Twilio has no such message
			errCode int
		}{
			{1, clinic, "sent", 10 * time.Minute, "delivered", 0},
			{2, clinic, "queued", 9 * time.Minute, "queued", 0}, // no news
			{3, clinic, "sent", 8 * time.Minute, "", 0},         // not in the account (deleted)
			{4, clinic, "sent", 7 * time.Minute, "undelivered", 30003},
			{5, clinic, "queued", 30 * time.Second, "delivered", 0},      // its callback may still come
			{6, clinic, "sent", 4 * 24 * time.Hour, "delivered", 0},      // too old to ask about
			{7, clinic, "delivered", 6 * time.Minute, "read", 0},         // final already
			{8, "15550002222", "sent", 10 * time.Minute, "delivered", 0}, // another clinic number's
		}
		e.provider.latest = map[string]*sms.LoggedMessage{}
		for _, tt := range texts {
			require.NoError(t, e.db.Outbound.Insert(ctx, &database.Outbound{MessageSID: sid(tt.n), LoginID: tt.login,
				PortalID: patient(tt.n)[1:], Status: tt.status, Kind: string(outbox.KindStaffReply), CreatedAt: now.Add(-tt.age)}))
			if tt.twilio != "" {
				e.provider.latest[sid(tt.n)] = &sms.LoggedMessage{SID: sid(tt.n), AccountSID: "AC00000000000000000000000000000001",
					From: clinicPhone, To: patient(tt.n), Direction: "outbound-api", Status: tt.twilio, ErrorCode: tt.errCode}
			}
		}
		o := e.catchUpOutbox()
		s := &statuses{db: e.db}
		// This process started an hour ago: only texts overdue by the usual delay are asked about.
		require.NoError(t, o.CatchUpStatuses(ctx, clinic, now.Add(-time.Hour), s.apply))
		assert.Equal(t, []string{sid(1), sid(2), sid(3), sid(4)}, e.provider.fetched, "the overdue texts, oldest first")
		assert.Equal(t, []sms.StatusCallback{
			{MessageSID: sid(1), AccountSID: "AC00000000000000000000000000000001", From: clinicPhone, To: patient(1), Status: "delivered"},
			{MessageSID: sid(4), AccountSID: "AC00000000000000000000000000000001", From: clinicPhone, To: patient(4), Status: "undelivered", ErrorCode: 30003},
		}, s.applied, "as their status callbacks would have been")

		// A process that started just now: the callbacks of texts sent before it went to one
		// that is gone, so they are asked about at once.
		e.provider.fetched = nil
		require.NoError(t, o.CatchUpStatuses(ctx, clinic, time.Now(), s.apply))
		assert.Equal(t, []string{sid(2), sid(3), sid(5)}, e.provider.fetched)
		require.Len(t, s.applied, 3)
		assert.Equal(t, sid(5), s.applied[2].MessageSID)
		out, err := e.db.Outbound.Get(ctx, sid(5))
		require.NoError(t, err)
		assert.Equal(t, "delivered", out.Status)
	})
}

func TestCatchUpOfStatusesStopsWhenTwilioFails(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		for n := 1; n <= 2; n++ {
			require.NoError(t, e.db.Outbound.Insert(ctx, &database.Outbound{MessageSID: sid(n), LoginID: clinic, PortalID: patient(n)[1:],
				Status: "sent", CreatedAt: time.Now().Add(-overdue - time.Duration(n)*time.Minute)}))
		}
		o := e.catchUpOutbox()
		s := &statuses{db: e.db}
		e.provider.fetchErr = errors.New("twilio answered HTTP 503")
		assert.ErrorIs(t, o.CatchUpStatuses(ctx, clinic, time.Now().Add(-time.Hour), s.apply), e.provider.fetchErr)
		assert.Len(t, e.provider.fetched, 1, "the first failure stops the round; it is retried later")
		assert.Empty(t, s.applied)

		// An apply that fails stops the round too.
		e.provider.fetchErr = nil
		e.provider.latest = map[string]*sms.LoggedMessage{
			sid(1): {SID: sid(1), Status: "delivered"}, sid(2): {SID: sid(2), Status: "delivered"}}
		refused := errors.New("database is locked")
		calls := 0
		assert.ErrorIs(t, o.CatchUpStatuses(ctx, clinic, time.Now().Add(-time.Hour), func(context.Context, *sms.StatusCallback) error {
			calls++
			return refused
		}), refused)
		assert.Equal(t, 1, calls)
	})
}
