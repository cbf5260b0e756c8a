package database_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

const (
	testLogin  = "15550001111"
	testPortal = "15551234567"
)

func TestSecureLinkLockout(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		require.NoError(t, db.Link.Insert(ctx, &database.SecureLink{TokenHash: "h1", LoginID: testLogin, PortalID: testPortal,
			CreatedAt: now, ExpiresAt: now.Add(72 * time.Hour)}))
		n, err := db.Link.CountActive(ctx, testLogin, testPortal, now)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		for i := range 5 {
			count, err := db.Link.ClaimAttempt(ctx, "h1", 5, now.Add(time.Duration(i)*time.Second))
			require.NoError(t, err)
			assert.Equal(t, i+1, count)
		}
		l, err := db.Link.Get(ctx, "h1")
		require.NoError(t, err)
		assert.Equal(t, 5, l.FailedCodes)
		assert.Equal(t, now.Add(4*time.Second), l.LockedAt, "locked at the fifth claimed try")
		count, err := db.Link.ClaimAttempt(ctx, "h1", 5, now.Add(time.Minute))
		require.NoError(t, err)
		assert.Zero(t, count, "no sixth try")
		l, err = db.Link.Get(ctx, "h1")
		require.NoError(t, err)
		assert.Equal(t, 5, l.FailedCodes)
		assert.Equal(t, now.Add(4*time.Second), l.LockedAt, "a refused claim keeps the lock time")
		require.NoError(t, db.Link.ReleaseAttempt(ctx, "h1", 5))
		l, err = db.Link.Get(ctx, "h1")
		require.NoError(t, err)
		assert.Equal(t, 4, l.FailedCodes, "a right answer gives its try back")
		assert.True(t, l.LockedAt.IsZero(), "and the link is usable again")
		count, err = db.Link.ClaimAttempt(ctx, "h1", 5, now.Add(73*time.Hour))
		require.NoError(t, err)
		assert.Zero(t, count, "an expired link has no tries")
		count, err = db.Link.ClaimAttempt(ctx, "h1", 5, now.Add(time.Minute))
		require.NoError(t, err)
		assert.Equal(t, 5, count)
		require.NoError(t, db.Link.UnlockAll(ctx, testLogin, testPortal))
		l, err = db.Link.Get(ctx, "h1")
		require.NoError(t, err)
		assert.Zero(t, l.FailedCodes)
		assert.True(t, l.LockedAt.IsZero())
		require.NoError(t, db.Link.RevokeAll(ctx, testLogin, testPortal, now))
		l, err = db.Link.Get(ctx, "h1")
		require.NoError(t, err)
		assert.Equal(t, now, l.RevokedAt)
		n, err = db.Link.CountActive(ctx, testLogin, testPortal, now)
		require.NoError(t, err)
		assert.Zero(t, n)
		count, err = db.Link.ClaimAttempt(ctx, "h1", 5, now)
		require.NoError(t, err)
		assert.Zero(t, count, "a revoked link has no tries")
	})
}

func TestSecureCodeSingleUse(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		for i, hash := range []string{"c1", "c2"} {
			require.NoError(t, db.Code.Insert(ctx, &database.SecureCode{LinkHash: "h1", PatientPhone: "+15551234567", CodeHash: hash,
				CreatedAt: now.Add(time.Duration(i) * time.Second), ExpiresAt: now.Add(10 * time.Minute)}))
		}
		latest, err := db.Code.Latest(ctx, "h1")
		require.NoError(t, err)
		assert.Equal(t, "c2", latest.CodeHash, "a new code replaces the last")
		ok, err := db.Code.Use(ctx, "h1", "c2", now)
		require.NoError(t, err)
		assert.True(t, ok)
		ok, err = db.Code.Use(ctx, "h1", "c2", now)
		require.NoError(t, err)
		assert.False(t, ok, "a replayed code fails")
		// Two codes in the last hour: a third within a limit of 3 is stored, a fourth is not,
		// whether counted by link or by number.
		third := &database.SecureCode{LinkHash: "h1", PatientPhone: "+15551234567", CodeHash: "c3",
			CreatedAt: now.Add(2 * time.Second), ExpiresAt: now.Add(10 * time.Minute)}
		stored, err := db.Code.InsertWithinLimit(ctx, third, now.Add(-time.Hour), 3)
		require.NoError(t, err)
		assert.True(t, stored)
		third.CodeHash = "c4"
		stored, err = db.Code.InsertWithinLimit(ctx, third, now.Add(-time.Hour), 3)
		require.NoError(t, err)
		assert.False(t, stored, "three per link")
		otherLink := &database.SecureCode{LinkHash: "h2", PatientPhone: "+15551234567", CodeHash: "c5",
			CreatedAt: now.Add(3 * time.Second), ExpiresAt: now.Add(10 * time.Minute)}
		stored, err = db.Code.InsertWithinLimit(ctx, otherLink, now.Add(-time.Hour), 3)
		require.NoError(t, err)
		assert.False(t, stored, "three per number")
		stored, err = db.Code.InsertWithinLimit(ctx, otherLink, now.Add(time.Second), 3)
		require.NoError(t, err)
		assert.True(t, stored, "codes older than the window do not count")
		latest, err = db.Code.Latest(ctx, "h1")
		require.NoError(t, err)
		assert.Equal(t, "c3", latest.CodeHash)
		require.NoError(t, db.Code.DeleteExpiredBefore(ctx, now.Add(11*time.Minute)))
		latest, err = db.Code.Latest(ctx, "h1")
		require.NoError(t, err)
		assert.Nil(t, latest)
	})
}

func TestSecureSession(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		for _, h := range []string{"s1", "s2"} {
			require.NoError(t, db.Session.Insert(ctx, &database.SecureSession{SessionHash: h, LinkHash: "h1", LoginID: testLogin,
				PortalID: testPortal, CreatedAt: now, ExpiresAt: now.Add(12 * time.Hour)}))
		}
		require.NoError(t, db.Session.Touch(ctx, "s1", now.Add(time.Minute)))
		s, err := db.Session.Get(ctx, "s1")
		require.NoError(t, err)
		assert.Equal(t, now.Add(time.Minute), s.LastSeenAt)
		require.NoError(t, db.Session.End(ctx, "s1", now.Add(2*time.Minute)))
		require.NoError(t, db.Session.Touch(ctx, "s1", now.Add(3*time.Minute)))
		s, err = db.Session.Get(ctx, "s1")
		require.NoError(t, err)
		assert.Equal(t, now.Add(time.Minute), s.LastSeenAt, "an ended session is not touched")
		require.NoError(t, db.Session.EndAll(ctx, testLogin, testPortal, now.Add(time.Hour)))
		s, err = db.Session.Get(ctx, "s2")
		require.NoError(t, err)
		assert.Equal(t, now.Add(time.Hour), s.EndedAt)
	})
}

func TestSecureMessages(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		staff := &database.SecureMessage{LoginID: testLogin, PortalID: testPortal, SenderName: "Nurse Kim", Kind: database.SecureText,
			KeyID: "k1", Body: []byte{1, 2, 3}, CreatedAt: now}
		require.NoError(t, db.Secure.Insert(ctx, staff))
		photo := &database.SecureMessage{LoginID: testLogin, PortalID: testPortal, FromPatient: true, SenderName: "Patient",
			Kind: database.SecureImage, ContentType: "image/jpeg", Size: 4, KeyID: "k1", Body: []byte{4}, Data: []byte{5, 6, 7, 8}, CreatedAt: now}
		require.NoError(t, db.Secure.Insert(ctx, photo))
		assert.Greater(t, photo.ID, staff.ID)

		list, err := db.Secure.List(ctx, testLogin, testPortal, 0, 10)
		require.NoError(t, err)
		require.Len(t, list, 2)
		assert.Nil(t, list[1].Data, "listing never loads file data")
		assert.Equal(t, []byte{4}, list[1].Body)
		got, err := db.Secure.Get(ctx, photo.ID, testLogin, testPortal)
		require.NoError(t, err)
		assert.Equal(t, []byte{5, 6, 7, 8}, got.Data)
		other, err := db.Secure.Get(ctx, photo.ID, testLogin, "15557654321")
		require.NoError(t, err)
		assert.Nil(t, other, "a message is only found in its own conversation")

		n, err := db.Secure.UnreadStaffCount(ctx, testLogin, testPortal)
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		read, err := db.Secure.MarkRead(ctx, testLogin, testPortal, photo.ID, now)
		require.NoError(t, err)
		assert.EqualValues(t, 1, read)
		read, err = db.Secure.MarkRead(ctx, testLogin, testPortal, photo.ID, now)
		require.NoError(t, err)
		assert.Zero(t, read)
		require.NoError(t, db.Secure.SetEventID(ctx, staff.ID, "$evt"))
		list, err = db.Secure.List(ctx, testLogin, testPortal, 0, 1)
		require.NoError(t, err)
		assert.Equal(t, "$evt", list[0].EventID)
		assert.Equal(t, now, list[0].ReadAt)
	})
}

func TestAuditChain(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		for _, ev := range []database.AuditEvent{database.EventModeSwitched, database.EventLinkIssued, database.EventCodeSent, database.EventCodeVerified} {
			require.NoError(t, db.Audit.Append(ctx, &database.AuditEntry{Actor: database.StaffActor("@nurse:clinic.example"), LoginID: testLogin,
				PortalID: testPortal, Event: ev, Outcome: "ok"}))
		}
		n, err := db.Audit.Verify(ctx)
		require.NoError(t, err)
		assert.Equal(t, 4, n)
		found, err := db.Audit.Find(ctx, testLogin, testPortal, "code sent")
		require.NoError(t, err)
		require.Len(t, found, 1)
		assert.Equal(t, database.GenesisHash, mustFirst(t, db).PrevHash)

		// An edited row breaks the chain at that row.
		dropAuditGuards(t, db)
		_, err = db.Exec(ctx, "UPDATE audit_log SET outcome='failed' WHERE id=$1", found[0].ID)
		require.NoError(t, err)
		_, err = db.Audit.Verify(ctx)
		require.ErrorIs(t, err, database.ErrAuditChainBroken)
		assert.Contains(t, err.Error(), "code sent")
	})
}

func mustFirst(t *testing.T, db *database.Database) *database.AuditEntry {
	found, err := db.Audit.Find(context.Background(), testLogin, testPortal, "mode switched")
	require.NoError(t, err)
	require.NotEmpty(t, found)
	return found[0]
}

func TestClaimAlertQuietPeriod(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		_, err := db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: testLogin, PortalID: testPortal,
			ClinicPhone: "+15550001111", PatientPhone: "+15551234567"})
		require.NoError(t, err)
		ok, err := db.Conversation.ClaimAlert(ctx, testLogin, testPortal, now, 15*time.Minute)
		require.NoError(t, err)
		assert.True(t, ok)
		ok, err = db.Conversation.ClaimAlert(ctx, testLogin, testPortal, now.Add(time.Minute), 15*time.Minute)
		require.NoError(t, err)
		assert.False(t, ok, "one alert per quiet period")
		ok, err = db.Conversation.ClaimAlert(ctx, testLogin, testPortal, now.Add(15*time.Minute), 15*time.Minute)
		require.NoError(t, err)
		assert.True(t, ok)
		require.NoError(t, db.Conversation.SetMode(ctx, testLogin, testPortal, database.ModeSecure))
		require.NoError(t, db.Conversation.SetDOBHash(ctx, testLogin, testPortal, "abc"))
		c, err := db.Conversation.Get(ctx, testLogin, testPortal)
		require.NoError(t, err)
		assert.Equal(t, database.ModeSecure, c.Mode)
		assert.Equal(t, "abc", c.DOBHash)
		assert.Equal(t, now.Add(15*time.Minute), c.LastAlertAt)
	})
}

func TestPatientMessagesSeenByClinic(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		start := time.UnixMilli(time.Now().UnixMilli())
		insert := func(fromPatient bool, at time.Time) *database.SecureMessage {
			m := &database.SecureMessage{LoginID: testLogin, PortalID: testPortal, FromPatient: fromPatient, SenderName: "x",
				Kind: database.SecureText, KeyID: "k1", Body: []byte{1}, CreatedAt: at}
			require.NoError(t, db.Secure.Insert(ctx, m))
			return m
		}
		insert(true, start)
		staff := insert(false, start.Add(time.Second))
		second := insert(true, start.Add(2*time.Second))
		third := insert(true, start.Add(3*time.Second))

		seen, err := db.Secure.SeenByClinic(ctx, testLogin, testPortal)
		require.NoError(t, err)
		assert.Zero(t, seen, "nothing seen yet")

		// A receipt on the second message: the first and second are seen, staff messages untouched.
		n, err := db.Secure.MarkSeenByClinic(ctx, testLogin, testPortal, second.ID, time.Time{}, start.Add(time.Minute))
		require.NoError(t, err)
		assert.EqualValues(t, 2, n)
		seen, err = db.Secure.SeenByClinic(ctx, testLogin, testPortal)
		require.NoError(t, err)
		assert.Equal(t, second.ID, seen)
		got, err := db.Secure.Get(ctx, staff.ID, testLogin, testPortal)
		require.NoError(t, err)
		assert.True(t, got.ReadAt.IsZero(), "a staff message's read_at is the patient's reading")

		// A receipt on an event that is not a secure message: by time.
		n, err = db.Secure.MarkSeenByClinic(ctx, testLogin, testPortal, 0, third.CreatedAt.Add(-time.Millisecond), start.Add(time.Minute))
		require.NoError(t, err)
		assert.Zero(t, n)
		n, err = db.Secure.MarkSeenByClinic(ctx, testLogin, testPortal, 0, third.CreatedAt, start.Add(time.Minute))
		require.NoError(t, err)
		assert.EqualValues(t, 1, n)
		seen, err = db.Secure.SeenByClinic(ctx, testLogin, testPortal)
		require.NoError(t, err)
		assert.Equal(t, third.ID, seen)

		other, err := db.Secure.SeenByClinic(ctx, testLogin, "15557654321")
		require.NoError(t, err)
		assert.Zero(t, other, "only the conversation's own messages")
	})
}
