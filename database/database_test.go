package database_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/database/upgrades"
	"github.com/carebridge/carebridge/internal/testenv"
)

func openDB(t *testing.T, kind string) *database.Database {
	spec := testenv.NewDatabase(t, kind)
	raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	db := database.New(raw, zerolog.Nop())
	db.Audit.SetKeys(clinicAuditKeys)
	require.NoError(t, db.Upgrade(context.Background()))
	return db
}

func eachDB(t *testing.T, fn func(t *testing.T, db *database.Database)) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) { fn(t, openDB(t, kind)) })
	}
}

func TestUpgradeIsIdempotent(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		require.NoError(t, db.Upgrade(context.Background()), "a second upgrade changes nothing")
		var version int
		require.NoError(t, db.QueryRow(context.Background(), "SELECT version FROM "+database.VersionTable).Scan(&version))
		assert.Equal(t, 16, version)
	})
}

func TestConversationGetOrCreate(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		missing, err := db.Conversation.Get(ctx, "15550001111", "15551234567")
		require.NoError(t, err)
		assert.Nil(t, missing)

		created, err := db.Conversation.GetOrCreate(ctx, &database.Conversation{
			LoginID: "15550001111", PortalID: "15551234567",
			ClinicPhone: "+15550001111", PatientPhone: "+15551234567",
		})
		require.NoError(t, err)
		assert.Equal(t, database.ModeSMS, created.Mode)
		assert.False(t, created.RoomReady)
		assert.False(t, created.OptedOut)

		// A second create keeps the first row.
		again, err := db.Conversation.GetOrCreate(ctx, &database.Conversation{
			LoginID: "15550001111", PortalID: "15551234567",
			ClinicPhone: "+15550001111", PatientPhone: "+15551234567", Mode: database.ModeSecure,
		})
		require.NoError(t, err)
		assert.Equal(t, database.ModeSMS, again.Mode)

		require.NoError(t, db.Conversation.SetRoomReady(ctx, "15550001111", "15551234567"))
		require.NoError(t, db.Conversation.SetOptedOut(ctx, "15550001111", "15551234567", true))
		got, err := db.Conversation.Get(ctx, "15550001111", "15551234567")
		require.NoError(t, err)
		assert.True(t, got.RoomReady)
		assert.True(t, got.OptedOut)

		name, err := db.Conversation.GetPatientName(ctx, "+15551234567")
		require.NoError(t, err)
		assert.Empty(t, name)
		require.NoError(t, db.Conversation.SetPatientName(ctx, "+15551234567", "Maria Lopez"))
		name, err = db.Conversation.GetPatientName(ctx, "+15551234567")
		require.NoError(t, err)
		assert.Equal(t, "Maria Lopez", name)

		n, err := db.Conversation.CountByLogin(ctx, "15550001111")
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		require.NoError(t, db.Conversation.DeleteByLogin(ctx, "15550001111"))
		n, err = db.Conversation.CountByLogin(ctx, "15550001111")
		require.NoError(t, err)
		assert.Zero(t, n)
	})
}

func TestConversationModeIsChecked(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		_, err := db.Conversation.GetOrCreate(context.Background(), &database.Conversation{
			LoginID: "15550001111", PortalID: "15551234567",
			ClinicPhone: "+15550001111", PatientPhone: "+15551234567", Mode: "email",
		})
		assert.Error(t, err, "the schema refuses an unknown mode")
	})
}

func TestReceiptLifecycle(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		params := url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "Body": {"Can I move my appointment?"}}
		r := &database.Receipt{MessageSID: "SM0123456789abcdef0123456789abcdef", LoginID: "15550001111",
			PatientPhone: "+15551234567", Params: params, ReceivedAt: now}

		inserted, err := db.Receipt.Insert(ctx, r)
		require.NoError(t, err)
		assert.True(t, inserted)
		inserted, err = db.Receipt.Insert(ctx, r)
		require.NoError(t, err)
		assert.False(t, inserted, "a repeated MessageSid is stored once")

		_, pending, err := db.Receipt.NextDue(ctx)
		require.NoError(t, err)
		assert.True(t, pending)
		due, err := db.Receipt.GetDue(ctx, now, 10)
		require.NoError(t, err)
		require.Len(t, due, 1)
		assert.Equal(t, params, due[0].Params)
		assert.Equal(t, database.ReceiptPending, due[0].State)

		require.NoError(t, db.Receipt.MarkRetry(ctx, r.MessageSID, "homeserver unreachable", now.Add(time.Minute)))
		due, err = db.Receipt.GetDue(ctx, now, 10)
		require.NoError(t, err)
		assert.Empty(t, due, "not due before its retry time")
		due, err = db.Receipt.GetDue(ctx, now.Add(time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, due, 1)
		assert.Equal(t, 1, due[0].Attempts)
		assert.Equal(t, "homeserver unreachable", due[0].LastError)

		require.NoError(t, db.Receipt.MarkDelivered(ctx, r.MessageSID, now.Add(2*time.Minute)))
		got, err := db.Receipt.Get(ctx, r.MessageSID)
		require.NoError(t, err)
		assert.Equal(t, database.ReceiptDelivered, got.State)
		assert.Equal(t, 2, got.Attempts)
		assert.Equal(t, now.Add(2*time.Minute), got.DeliveredAt)
		_, pending, err = db.Receipt.NextDue(ctx)
		require.NoError(t, err)
		assert.False(t, pending)
		// A late retry mark cannot reopen a delivered receipt.
		require.NoError(t, db.Receipt.MarkRetry(ctx, r.MessageSID, "late", now))
		got, err = db.Receipt.Get(ctx, r.MessageSID)
		require.NoError(t, err)
		assert.Equal(t, database.ReceiptDelivered, got.State)
	})
}

func TestOutboundStatusAdvancesInOneStatementAndNeverBackwards(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		sid := "SM00000000000000000000000000000001"
		require.NoError(t, db.Outbound.Insert(ctx, &database.Outbound{MessageSID: sid, LoginID: "15550001111",
			PortalID: "15551234567", EventID: "$evt", SenderMXID: "@nurse:clinic.example", Status: "queued",
			Kind: "staff_reply", RemoteID: "out-7"}))
		// What sms.StatusesNotSuperseded gives for each status.
		notSent := []string{"canceled", "delivered", "failed", "read", "received", "sent", "undelivered"}
		notUndelivered := []string{"canceled", "failed", "undelivered"}

		got, err := db.Outbound.AdvanceStatus(ctx, sid, "15550001111", "sent", 0, notSent)
		require.NoError(t, err)
		require.NotNil(t, got, "queued moves on to sent")
		assert.Equal(t, "sent", got.Status)
		assert.Equal(t, "15551234567", got.PortalID)
		assert.Equal(t, "$evt", got.EventID)
		assert.Equal(t, "@nurse:clinic.example", got.SenderMXID)
		assert.Equal(t, "staff_reply", got.Kind)
		assert.Equal(t, "out-7", got.RemoteID)

		got, err = db.Outbound.AdvanceStatus(ctx, sid, "15550001111", "sent", 0, notSent)
		require.NoError(t, err)
		assert.Nil(t, got, "a repeated callback changes nothing")
		got, err = db.Outbound.AdvanceStatus(ctx, sid, "15550009999", "undelivered", 30003, notUndelivered)
		require.NoError(t, err)
		assert.Nil(t, got, "another clinic number's callback changes nothing")

		got, err = db.Outbound.AdvanceStatus(ctx, sid, "15550001111", "undelivered", 30003, notUndelivered)
		require.NoError(t, err)
		require.NotNil(t, got)
		assert.Equal(t, "undelivered", got.Status)
		assert.Equal(t, 30003, got.ErrorCode)
		got, err = db.Outbound.AdvanceStatus(ctx, sid, "15550001111", "sent", 0, notSent)
		require.NoError(t, err)
		assert.Nil(t, got, "a late sent never hides a failure")

		stored, err := db.Outbound.Get(ctx, sid)
		require.NoError(t, err)
		assert.Equal(t, "undelivered", stored.Status)
		assert.Equal(t, 30003, stored.ErrorCode)
		missing, err := db.Outbound.AdvanceStatus(ctx, "SM00000000000000000000000000000002", "15550001111", "sent", 0, notSent)
		require.NoError(t, err)
		assert.Nil(t, missing)
		_, err = db.Outbound.AdvanceStatus(ctx, sid, "15550001111", "sent", 0, nil)
		assert.Error(t, err, "an empty list would be invalid SQL")
	})
}

// v1Schema is what version 1 created, as 00-latest.sql said then.
var v1Schema = []string{
	"CREATE TABLE " + database.VersionTable + " (version INTEGER, compat INTEGER)",
	"INSERT INTO " + database.VersionTable + " (version, compat) VALUES (1, 1)",
	"CREATE TABLE conversation (login_id TEXT NOT NULL, portal_id TEXT NOT NULL, clinic_phone TEXT NOT NULL, " +
		"patient_phone TEXT NOT NULL, patient_name TEXT NOT NULL DEFAULT '', mode TEXT NOT NULL DEFAULT 'sms', " +
		"opted_out BOOLEAN NOT NULL DEFAULT false, room_ready BOOLEAN NOT NULL DEFAULT false, created_at BIGINT NOT NULL, " +
		"PRIMARY KEY (login_id, portal_id))",
	"CREATE TABLE inbound_receipt (message_sid TEXT PRIMARY KEY, login_id TEXT NOT NULL, patient_phone TEXT NOT NULL, " +
		"state TEXT NOT NULL, received_at BIGINT NOT NULL)",
}

// TestUpgradeFromV1 applies the step upgrade to a database created at version 1.
func TestUpgradeFromV1(t *testing.T) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			spec := testenv.NewDatabase(t, kind)
			raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
			require.NoError(t, err)
			defer raw.Close()
			ctx := context.Background()
			for _, stmt := range v1Schema {
				_, err = raw.Exec(ctx, stmt)
				require.NoError(t, err, stmt)
			}
			db := database.New(raw, zerolog.Nop())
			require.NoError(t, db.Upgrade(ctx))
			require.NoError(t, db.Outbound.Insert(ctx, &database.Outbound{MessageSID: "SM1", LoginID: "1", PortalID: "2",
				EventID: "$e", SenderMXID: "@a:b", Status: "queued"}))
		})
	}
}

func TestDueReceiptsKeepConversationOrder(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		base := time.UnixMilli(time.Now().UnixMilli())
		insert := func(sid, patient string, at time.Time) {
			_, err := db.Receipt.Insert(ctx, &database.Receipt{MessageSID: sid, LoginID: "15550001111", PatientPhone: patient,
				Params: url.Values{"MessageSid": {sid}}, ReceivedAt: at})
			require.NoError(t, err)
		}
		insert("SMa1", "+15551234567", base)
		insert("SMa2", "+15551234567", base.Add(time.Second))
		insert("SMb1", "+15557654321", base.Add(2*time.Second))
		sids := func() []string {
			due, err := db.Receipt.GetDue(ctx, base.Add(time.Hour), 10)
			require.NoError(t, err)
			var out []string
			for _, r := range due {
				out = append(out, r.MessageSID)
			}
			return out
		}
		assert.Equal(t, []string{"SMa1", "SMb1"}, sids(), "one head per conversation")
		// a1 fails and is rescheduled: a2 must still wait for it, b1 goes ahead.
		require.NoError(t, db.Receipt.MarkRetry(ctx, "SMa1", "homeserver down", base.Add(2*time.Hour)))
		assert.Equal(t, []string{"SMb1"}, sids())
		require.NoError(t, db.Receipt.MarkDelivered(ctx, "SMb1", base))
		require.NoError(t, db.Receipt.MarkDelivered(ctx, "SMa1", base))
		assert.Equal(t, []string{"SMa2"}, sids())
	})
}

func TestOutboundMediaExpiry(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		m := &database.OutboundMedia{TokenHash: "ab12", ContentType: "image/jpeg", FileName: "image.jpg", Size: 870,
			MXC: "mxc://clinic.example/abc", FileInfo: `{"v":"v2"}`, ExpiresAt: now.Add(time.Hour)}
		require.NoError(t, db.Media.Insert(ctx, m))
		got, err := db.Media.GetValid(ctx, "ab12", now)
		require.NoError(t, err)
		assert.Equal(t, m, got)
		got, err = db.Media.GetValid(ctx, "ab12", now.Add(time.Hour))
		require.NoError(t, err)
		assert.Nil(t, got, "an expired URL serves nothing")
		require.NoError(t, db.Media.DeleteExpired(ctx, now.Add(2*time.Hour)))
		got, err = db.Media.GetValid(ctx, "ab12", now)
		require.NoError(t, err)
		assert.Nil(t, got)
	})
}

func TestRoomPolicy(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		for _, p := range []string{"+15551230001", "+15551230002", "+15551230003"} {
			_, err := db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: "15550001111", PortalID: p[1:],
				ClinicPhone: "+15550001111", PatientPhone: p})
			require.NoError(t, err)
		}
		plain := database.RoomPolicy{AllowedServers: []string{"clinic.example"}}
		// Only conversations with a room are listed.
		require.NoError(t, db.Conversation.SetRoomReady(ctx, "15550001111", "15551230001"))
		require.NoError(t, db.Conversation.SetRoomReady(ctx, "15550001111", "15551230002"))
		keys, err := db.Conversation.RoomsNotAt(ctx, plain, 10)
		require.NoError(t, err)
		assert.Equal(t, []database.ConversationKey{{LoginID: "15550001111", PortalID: "15551230001"}, {LoginID: "15550001111", PortalID: "15551230002"}}, keys)
		got, err := db.Conversation.RoomPolicy(ctx, "15550001111", "15551230001")
		require.NoError(t, err)
		assert.Nil(t, got, "no policy applied yet")

		require.NoError(t, db.Conversation.SetRoomPolicy(ctx, "15550001111", "15551230001", plain))
		keys, err = db.Conversation.RoomsNotAt(ctx, plain, 10)
		require.NoError(t, err)
		assert.Equal(t, []database.ConversationKey{{LoginID: "15550001111", PortalID: "15551230002"}}, keys)
		got, err = db.Conversation.RoomPolicy(ctx, "15550001111", "15551230001")
		require.NoError(t, err)
		assert.Equal(t, &plain, got)

		// Masking alone, or a server more, is a new policy; the limit holds.
		masked := database.RoomPolicy{AllowedServers: []string{"clinic.example"}, MaskNames: true}
		keys, err = db.Conversation.RoomsNotAt(ctx, masked, 10)
		require.NoError(t, err)
		assert.Len(t, keys, 2)
		wider := database.RoomPolicy{AllowedServers: []string{"clinic.example", "hospital.example"}}
		keys, err = db.Conversation.RoomsNotAt(ctx, wider, 1)
		require.NoError(t, err)
		assert.Len(t, keys, 1)
		require.NoError(t, db.Conversation.SetRoomPolicy(ctx, "15550001111", "15551230002", masked))
		got, err = db.Conversation.RoomPolicy(ctx, "15550001111", "15551230002")
		require.NoError(t, err)
		assert.Equal(t, &masked, got)
	})
}

// TestUpgradeSplitsRoomPolicy: rooms whose policy version 13 stored as one packed string
// ("acl=…|mask=1") keep it as columns, and are not listed again for the same policy.
func TestUpgradeSplitsRoomPolicy(t *testing.T) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			spec := testenv.NewDatabase(t, kind)
			raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
			require.NoError(t, err)
			t.Cleanup(func() { _ = raw.Close() })
			for _, stmt := range v1Schema {
				_, err = raw.Exec(ctx, stmt)
				require.NoError(t, err, stmt)
			}
			v13 := raw.Child(database.VersionTable, upgrades.Table[:13], dbutil.ZeroLogger(zerolog.Nop()))
			require.NoError(t, v13.Upgrade(ctx))
			for portal, policy := range map[string]string{
				"15551230001": "acl=clinic.example,hospital.example|mask=1",
				"15551230002": "acl=clinic.example|mask=0",
				"15551230003": "",
			} {
				_, err = raw.Exec(ctx, `INSERT INTO conversation (login_id, portal_id, clinic_phone, patient_phone, created_at, room_ready, room_policy)
					VALUES ('15550001111', $1, '+15550001111', '+'||$1, 1, true, $2)`, portal, policy)
				require.NoError(t, err)
			}
			db := database.New(raw, zerolog.Nop())
			require.NoError(t, db.Upgrade(ctx))

			masked := database.RoomPolicy{AllowedServers: []string{"clinic.example", "hospital.example"}, MaskNames: true}
			got, err := db.Conversation.RoomPolicy(ctx, "15550001111", "15551230001")
			require.NoError(t, err)
			assert.Equal(t, &masked, got)
			got, err = db.Conversation.RoomPolicy(ctx, "15550001111", "15551230002")
			require.NoError(t, err)
			assert.Equal(t, &database.RoomPolicy{AllowedServers: []string{"clinic.example"}}, got)
			got, err = db.Conversation.RoomPolicy(ctx, "15550001111", "15551230003")
			require.NoError(t, err)
			assert.Nil(t, got)
			keys, err := db.Conversation.RoomsNotAt(ctx, masked, 10)
			require.NoError(t, err)
			assert.Equal(t, []database.ConversationKey{{LoginID: "15550001111", PortalID: "15551230002"},
				{LoginID: "15550001111", PortalID: "15551230003"}}, keys)
		})
	}
}
