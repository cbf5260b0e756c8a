package database_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

const (
	day          = 24 * time.Hour
	otherPortal  = "15557654321"
	revokedLink  = "15550002222" // portal whose link was revoked long ago
	recentRevoke = "15550003333" // portal whose link was revoked an hour ago
	liveRevoke   = "15550004444" // portal whose link was revoked long ago but has a live session
)

// purgeNow is a fixed clock: every row below sits just inside or just outside a boundary.
var purgeNow = time.Date(2025, time.March, 10, 12, 0, 0, 0, time.UTC)

// retentionFixture is which secure messages seedRetention stored as due and as kept, by portal.
type retentionFixture struct {
	dueMessages, keptMessages map[string][]int64 // by portal
}

func seedRetention(t *testing.T, db *database.Database) retentionFixture {
	t.Helper()
	ctx := context.Background()
	now := purgeNow
	fx := retentionFixture{dueMessages: map[string][]int64{}, keptMessages: map[string][]int64{}}

	message := func(portal string, fromPatient bool, eventID string, created time.Time, due bool) {
		m := &database.SecureMessage{LoginID: testLogin, PortalID: portal, FromPatient: fromPatient,
			SenderName: "Nurse Kim", Kind: database.SecureText, KeyID: "k1", Body: []byte("sealed"),
			EventID: eventID, CreatedAt: created}
		if fromPatient {
			m.SenderName = "Maria Lopez"
		}
		require.NoError(t, db.Secure.Insert(ctx, m))
		if due {
			fx.dueMessages[portal] = append(fx.dueMessages[portal], m.ID)
		} else {
			fx.keptMessages[portal] = append(fx.keptMessages[portal], m.ID)
		}
	}
	cutoff := now.Add(-30 * day)
	message(testPortal, false, "$staff1", cutoff.Add(-time.Millisecond), true)
	message(testPortal, true, "$patient1", cutoff.Add(-day), true)
	message(testPortal, false, "$staff2", cutoff, false)
	message(testPortal, true, "", cutoff.Add(-10*day), false) // not in the room yet: owed to it
	require.NoError(t, db.Secure.Insert(ctx, &database.SecureMessage{LoginID: testLogin, PortalID: otherPortal,
		SenderName: "Dr. Patel", Kind: database.SecureImage, ContentType: "image/jpeg", Size: 6, KeyID: "k1",
		Body: []byte("sealed name"), Data: []byte("sealed"), EventID: "$photo", CreatedAt: cutoff.Add(-15 * day)}))
	fx.dueMessages[otherPortal] = []int64{lastMessageID(t, db)}
	message(otherPortal, false, "$staff3", now.Add(-time.Hour), false)

	receipt := func(sid string, received time.Time, delivered bool) {
		_, err := db.Receipt.Insert(ctx, &database.Receipt{MessageSID: sid, LoginID: testLogin, PatientPhone: "+15551234567",
			Params: url.Values{"MessageSid": {sid}, "Body": {"Can I move my appointment?"}}, ReceivedAt: received})
		require.NoError(t, err)
		if delivered {
			require.NoError(t, db.Receipt.MarkDelivered(ctx, sid, received.Add(time.Second)))
		}
	}
	receipt("SMdue", now.Add(-7*day-time.Millisecond), true)
	receipt("SMedge", now.Add(-7*day), true)
	receipt("SMpending", now.Add(-90*day), false)

	expired := now.Add(-day)
	link := func(hash, portal string, expires time.Time) {
		require.NoError(t, db.Link.Insert(ctx, &database.SecureLink{TokenHash: hash, LoginID: testLogin, PortalID: portal,
			CreatedAt: expires.Add(-72 * time.Hour), ExpiresAt: expires}))
	}
	link("l-due", testPortal, expired.Add(-time.Millisecond))
	link("l-edge", testPortal, expired)
	link("l-revoked", revokedLink, now.Add(48*time.Hour))
	require.NoError(t, db.Link.RevokeAll(ctx, testLogin, revokedLink, expired.Add(-time.Millisecond)))
	link("l-revoked-recent", recentRevoke, now.Add(48*time.Hour))
	require.NoError(t, db.Link.RevokeAll(ctx, testLogin, recentRevoke, now.Add(-time.Hour)))
	link("l-live", liveRevoke, now.Add(48*time.Hour))
	require.NoError(t, db.Link.RevokeAll(ctx, testLogin, liveRevoke, now.Add(-2*day)))

	session := func(hash, linkHash string, expires, ended time.Time) {
		require.NoError(t, db.Session.Insert(ctx, &database.SecureSession{SessionHash: hash, LinkHash: linkHash,
			LoginID: testLogin, PortalID: testPortal, CreatedAt: expires.Add(-12 * time.Hour), ExpiresAt: expires}))
		if !ended.IsZero() {
			require.NoError(t, db.Session.End(ctx, hash, ended))
		}
	}
	session("s-due", "l-edge", expired.Add(-time.Millisecond), time.Time{})
	session("s-edge", "l-edge", expired, time.Time{})
	session("s-ended", "l-due", expired.Add(11*time.Hour), expired.Add(-time.Millisecond))
	session("s-ended-recent", "l-edge", now.Add(5*time.Hour), now.Add(-time.Hour))
	session("s-live", "l-live", now.Add(time.Hour), time.Time{}) // keeps its revoked link

	code := func(linkHash, codeHash string, expires time.Time) {
		require.NoError(t, db.Code.Insert(ctx, &database.SecureCode{LinkHash: linkHash, PatientPhone: "+15551234567",
			CodeHash: codeHash, CreatedAt: expires.Add(-10 * time.Minute), ExpiresAt: expires}))
	}
	code("l-due", "c-due", expired.Add(-time.Millisecond))
	code("l-edge", "c-edge", expired)
	code("l-due", "c-due", now.Add(5*time.Minute)) // same hashes as a due code, still live

	media := func(hash string, expires time.Time) {
		require.NoError(t, db.Media.Insert(ctx, &database.OutboundMedia{TokenHash: hash, ContentType: "image/png",
			FileName: "wound.png", Size: 1024, MXC: "mxc://clinic.example/abc", ExpiresAt: expires}))
	}
	media("m-due", expired.Add(-time.Millisecond))
	media("m-edge", expired)
	return fx
}

func lastMessageID(t *testing.T, db *database.Database) (id int64) {
	t.Helper()
	require.NoError(t, db.QueryRow(context.Background(), "SELECT MAX(id) FROM secure_message").Scan(&id))
	return id
}

func countRows(t *testing.T, db *database.Database, query string, args ...any) (n int) {
	t.Helper()
	require.NoError(t, db.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func messageIDs(t *testing.T, db *database.Database, portal string) []int64 {
	t.Helper()
	rows, err := db.Secure.List(context.Background(), testLogin, portal, 0, 100)
	require.NoError(t, err)
	ids := []int64{}
	for _, m := range rows {
		ids = append(ids, m.ID)
	}
	return ids
}

func purgeAudit(t *testing.T, db *database.Database, loginID, portalID string) []string {
	t.Helper()
	entries, err := db.Audit.Find(context.Background(), loginID, portalID, database.EventDataPurged)
	require.NoError(t, err)
	details := []string{}
	for _, e := range entries {
		assert.Equal(t, database.SystemActor, e.Actor)
		assert.Equal(t, database.OutcomeOK, e.Outcome)
		details = append(details, e.Detail)
	}
	return details
}

func TestPurgeDeletesExactlyWhatIsDue(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		fx := seedRetention(t, db)

		counts, err := db.Purge(ctx, purgeNow, database.NewRetentionPolicy(30))
		require.NoError(t, err)
		assert.Equal(t, database.PurgeCounts{SecureMessages: 3, Conversations: 2, Receipts: 1, Links: 2, Codes: 1,
			Sessions: 2, Media: 1}, counts)
		assert.EqualValues(t, 10, counts.Total())

		assert.Equal(t, fx.keptMessages[testPortal], messageIDs(t, db, testPortal))
		assert.Equal(t, fx.keptMessages[otherPortal], messageIDs(t, db, otherPortal))

		for table, keys := range map[string]map[string]bool{
			"SELECT COUNT(*) FROM inbound_receipt WHERE message_sid=$1": {"SMdue": false, "SMedge": true, "SMpending": true},
			"SELECT COUNT(*) FROM secure_link WHERE token_hash=$1": {"l-due": false, "l-edge": true, "l-revoked": false,
				"l-revoked-recent": true, "l-live": true},
			"SELECT COUNT(*) FROM secure_session WHERE session_hash=$1": {"s-due": false, "s-edge": true, "s-ended": false,
				"s-ended-recent": true, "s-live": true},
			"SELECT COUNT(*) FROM outbound_media WHERE token_hash=$1": {"m-due": false, "m-edge": true},
			"SELECT COUNT(*) FROM secure_code WHERE code_hash=$1":     {"c-edge": true},
		} {
			for key, kept := range keys {
				assert.Equal(t, kept, countRows(t, db, table, key) == 1, "%s %s kept", table, key)
			}
		}
		assert.Equal(t, 1, countRows(t, db, "SELECT COUNT(*) FROM secure_code WHERE code_hash=$1", "c-due"),
			"the live code sharing a due code's hashes stays")
		assert.Equal(t, 1, countRows(t, db, "SELECT COUNT(*) FROM secure_code WHERE expires_at>$1", purgeNow.UnixMilli()))

		assert.Equal(t, []string{"secure_message: 2 rows older than 30 days"}, purgeAudit(t, db, testLogin, testPortal))
		assert.Equal(t, []string{"secure_message: 1 row older than 30 days"}, purgeAudit(t, db, testLogin, otherPortal))
		assert.ElementsMatch(t, []string{
			"inbound_receipt: 1 row delivered and received more than 7 days ago",
			"secure_session: 2 rows expired or ended more than 1 day ago",
			"secure_link: 2 rows expired or revoked more than 1 day ago",
			"secure_code: 1 row expired more than 1 day ago",
			"outbound_media: 1 row expired more than 1 day ago",
		}, purgeAudit(t, db, "", ""))
		checked, err := db.Audit.Verify(ctx)
		require.NoError(t, err)
		assert.Equal(t, 7, checked)
	})
}

func TestPurgeTwiceDeletesNothingMore(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		seedRetention(t, db)
		first, err := db.Purge(ctx, purgeNow, database.NewRetentionPolicy(30))
		require.NoError(t, err)
		require.NotZero(t, first.Total())
		auditRows := countRows(t, db, "SELECT COUNT(*) FROM audit_log")

		second, err := db.Purge(ctx, purgeNow, database.NewRetentionPolicy(30))
		require.NoError(t, err)
		assert.Equal(t, database.PurgeCounts{}, second)
		assert.Equal(t, auditRows, countRows(t, db, "SELECT COUNT(*) FROM audit_log"), "a purge of nothing is not audited")
	})
}

func TestPurgeInBatches(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		old := purgeNow.Add(-40 * day)
		for i := range 5 {
			require.NoError(t, db.Secure.Insert(ctx, &database.SecureMessage{LoginID: testLogin, PortalID: testPortal,
				SenderName: "Nurse Kim", Kind: database.SecureText, KeyID: "k1", Body: []byte("sealed"),
				EventID: fmt.Sprintf("$staff%d", i), CreatedAt: old.Add(time.Duration(i) * time.Minute)}))
		}
		for _, hash := range []string{"m1", "m2", "m3", "m4"} {
			require.NoError(t, db.Media.Insert(ctx, &database.OutboundMedia{TokenHash: hash, ContentType: "image/png",
				FileName: "rash.png", Size: 2048, MXC: "mxc://clinic.example/def", ExpiresAt: old}))
		}
		policy := database.NewRetentionPolicy(30)
		policy.BatchSize = 2
		counts, err := db.Purge(ctx, purgeNow, policy)
		require.NoError(t, err)
		assert.Equal(t, database.PurgeCounts{SecureMessages: 5, Conversations: 1, Media: 4}, counts)
		assert.Empty(t, messageIDs(t, db, testPortal))
		assert.Zero(t, countRows(t, db, "SELECT COUNT(*) FROM outbound_media"))

		// Each batch commits with its own audit row; the counts add up.
		assert.Equal(t, []string{
			"secure_message: 2 rows older than 30 days",
			"secure_message: 2 rows older than 30 days",
			"secure_message: 1 row older than 30 days",
		}, purgeAudit(t, db, testLogin, testPortal))
		assert.Equal(t, []string{
			"outbound_media: 2 rows expired more than 1 day ago",
			"outbound_media: 2 rows expired more than 1 day ago",
		}, purgeAudit(t, db, "", ""))
		checked, err := db.Audit.Verify(ctx)
		require.NoError(t, err)
		assert.Equal(t, 5, checked)
	})
}

func TestPurgeRefusesZeroPeriod(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		require.NoError(t, db.Secure.Insert(ctx, &database.SecureMessage{LoginID: testLogin, PortalID: testPortal,
			SenderName: "Nurse Kim", Kind: database.SecureText, KeyID: "k1", Body: []byte("sealed"),
			EventID: "$staff", CreatedAt: purgeNow.Add(-time.Minute)}))
		_, err := db.Purge(ctx, purgeNow, database.NewRetentionPolicy(0))
		assert.Error(t, err)
		assert.Len(t, messageIDs(t, db, testPortal), 1)
	})
}
