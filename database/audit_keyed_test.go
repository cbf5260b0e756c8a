package database_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
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

// testAuditKeys is a key ring of fixed keys (the bridge passes securechat.Keyring).
type testAuditKeys struct {
	current string
	keys    map[string][]byte
}

func (k testAuditKeys) Current() string { return k.current }

func (k testAuditKeys) AuditMAC(id string, data []byte) ([]byte, bool) {
	key, ok := k.keys[id]
	if !ok {
		return nil, false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(data)
	return mac.Sum(nil), true
}

var (
	auditKey1 = bytes.Repeat([]byte{0x4b}, 32)
	auditKey2 = bytes.Repeat([]byte{0x2c}, 32)
	// clinicAuditKeys is the ring the database tests write with.
	clinicAuditKeys = testAuditKeys{current: "k1", keys: map[string][]byte{"k1": auditKey1}}
)

// dropAuditGuards removes the triggers that refuse UPDATE and DELETE on audit rows, as
// someone who owns the database can: the tests that tamper with rows start with it.
func dropAuditGuards(t *testing.T, db *database.Database) {
	t.Helper()
	stmts := []string{"DROP TRIGGER IF EXISTS audit_log_no_update", "DROP TRIGGER IF EXISTS audit_log_no_delete"}
	if db.Dialect == dbutil.Postgres {
		stmts = []string{"DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
			"DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log"}
	}
	for _, stmt := range stmts {
		_, err := db.Exec(context.Background(), stmt)
		require.NoError(t, err, stmt)
	}
}

// TestAuditRewriteWithPlainSHA256IsDetected is what someone who can write the database
// does: delete row 6 of 10 and recompute rows 7-10 with plain SHA-256, as the unkeyed
// chain was made. Without the key the recomputed rows do not verify.
func TestAuditRewriteWithPlainSHA256IsDetected(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		rows := appendDay(t, db)
		require.Equal(t, int64(1), rows[0].ID)
		dropAuditGuards(t, db)
		_, err := db.Exec(ctx, "DELETE FROM audit_log WHERE id=$1", rows[5].ID)
		require.NoError(t, err)
		prev := rows[4].Hash
		for _, e := range rows[6:] {
			e.PrevHash = prev
			e.Hash = e.ComputeHash()
			_, err = db.Exec(ctx, "UPDATE audit_log SET prev_hash=$1, hash=$2 WHERE id=$3", e.PrevHash, e.Hash, e.ID)
			require.NoError(t, err)
			prev = e.Hash
		}
		head, err := db.Audit.VerifyChain(ctx)
		require.ErrorIs(t, err, database.ErrAuditChainBroken, "9 rows recomputed without the key pass as %d intact rows", head.Rows)
		assert.Contains(t, err.Error(), "row 7 ")
		assert.Equal(t, 5, head.Rows, "rows 1-5 are intact")

		// Marking the recomputed rows as unkeyed (written before the key) does not help.
		_, err = db.Exec(ctx, "UPDATE audit_log SET mac_key='' WHERE id>=$1", rows[6].ID)
		require.NoError(t, err)
		_, err = db.Audit.VerifyChain(ctx)
		require.ErrorIs(t, err, database.ErrAuditChainBroken)
		assert.Contains(t, err.Error(), "row 7 has no MAC, but every row after the start of the log is keyed")
	})
}

// TestAuditExpectCatchesRewrittenHistory: someone holding the database and the key
// rewrites the chain from row 6 on, or cuts it back; verify alone cannot tell, the head
// kept outside the database can.
func TestAuditExpectCatchesRewrittenHistory(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		rows := appendDay(t, db)
		kept, err := db.Audit.VerifyChain(ctx)
		require.NoError(t, err)
		anchor := kept.Anchor()
		_, err = db.Audit.VerifyChain(ctx, anchor)
		require.NoError(t, err, "the log holds the kept head")

		// An earlier head still holds as the log grows.
		require.NoError(t, db.Audit.Append(ctx, &database.AuditEntry{Actor: database.SystemActor, Event: "audit exported", Outcome: "ok"}))
		_, err = db.Audit.VerifyChain(ctx, anchor, database.AuditAnchor{ID: rows[4].ID, Hash: rows[4].Hash})
		require.NoError(t, err)

		// Rows 6 to 11 rewritten with the key: "failed" becomes "ok", and the chain holds.
		dropAuditGuards(t, db)
		prev := rows[4].Hash
		var all []*database.AuditEntry
		require.NoError(t, db.Audit.Each(ctx, time.Time{}, time.Time{}, func(e *database.AuditEntry) error {
			all = append(all, e)
			return nil
		}))
		_, err = db.Exec(ctx, "DELETE FROM audit_log WHERE id>$1", rows[4].ID)
		require.NoError(t, err)
		for _, e := range all[5:] {
			e.Outcome = "ok"
			e.PrevHash = prev
			e.Hash, _ = e.ComputeMAC(clinicAuditKeys)
			_, err = db.Exec(ctx, `INSERT INTO audit_log (id, at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash, mac_key)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
				e.ID, e.At.UnixMilli(), e.Actor, e.LoginID, e.PortalID, e.Event, e.Outcome, e.Detail, e.PrevHash, e.Hash, e.MACKey)
			require.NoError(t, err)
			prev = e.Hash
		}
		head, err := db.Audit.VerifyChain(ctx)
		require.NoError(t, err, "the rewrite holds together")
		assert.Equal(t, 11, head.Rows)

		_, err = db.Audit.VerifyChain(ctx, anchor)
		require.ErrorIs(t, err, database.ErrAuditChainBroken)
		var br *database.AuditBreak
		require.ErrorAs(t, err, &br)
		assert.True(t, br.Anchor)
		assert.Equal(t, int64(10), br.ID)
		assert.Contains(t, err.Error(), "row 10's hash is "+all[9].Hash+", not the "+anchor.Hash+" kept as head 10:"+anchor.Hash+
			": the log up to row 10 was rewritten")
		_, err = db.Audit.VerifyChain(ctx, database.AuditAnchor{ID: rows[4].ID, Hash: rows[4].Hash})
		require.NoError(t, err, "the rows before the rewrite are as kept")

		// Cut back to row 8: the head names a row past the end.
		_, err = db.Exec(ctx, "DELETE FROM audit_log WHERE id>8")
		require.NoError(t, err)
		_, err = db.Audit.VerifyChain(ctx, anchor)
		require.ErrorIs(t, err, database.ErrAuditChainBroken)
		assert.Contains(t, err.Error(), "names row 10, but the log ends at row 8: rows were cut from its end")
	})
}

// TestAuditRowsCannotBeChangedOrDeleted: the database itself refuses UPDATE and DELETE
// on audit rows, whoever asks.
func TestAuditRowsCannotBeChangedOrDeleted(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		rows := appendDay(t, db)
		for _, stmt := range []string{
			"UPDATE audit_log SET outcome='failed' WHERE id=$1",
			"UPDATE audit_log SET detail='' WHERE id>=$1",
			"DELETE FROM audit_log WHERE id=$1",
			"DELETE FROM audit_log WHERE id>=$1",
		} {
			_, err := db.Exec(ctx, stmt, rows[5].ID)
			require.Error(t, err, stmt)
			assert.Contains(t, err.Error(), "audit_log is append-only", stmt)
		}
		if db.Dialect == dbutil.Postgres {
			_, err := db.Exec(ctx, "TRUNCATE audit_log")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "audit_log is append-only")
		}
		head, err := db.Audit.VerifyChain(ctx)
		require.NoError(t, err)
		assert.Equal(t, len(rows), head.Rows)
		assert.Equal(t, rows[9].Hash, head.Hash)
	})
}

// TestAuditKeyRotation: rows made with k1 still verify after k2 becomes the current key,
// as long as k1 stays in the ring; without it they are named.
func TestAuditKeyRotation(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		rows := appendDay(t, db)
		db.Audit.SetKeys(testAuditKeys{current: "k2", keys: map[string][]byte{"k1": auditKey1, "k2": auditKey2}})
		rotated := &database.AuditEntry{Actor: database.CLIActor("it-admin"), Event: "keys rotated", Outcome: "ok", Detail: "250 rows to k2"}
		require.NoError(t, db.Audit.Append(ctx, rotated))
		assert.Equal(t, "k2", rotated.MACKey)
		assert.Equal(t, rows[9].Hash, rotated.PrevHash)
		head, err := db.Audit.VerifyChain(ctx)
		require.NoError(t, err)
		assert.Equal(t, 11, head.Rows)
		assert.Zero(t, head.Unkeyed)
		counts, err := db.Audit.MACKeyCounts(ctx)
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"k1": 10, "k2": 1}, counts)

		db.Audit.SetKeys(testAuditKeys{current: "k2", keys: map[string][]byte{"k2": auditKey2}})
		_, err = db.Audit.VerifyChain(ctx)
		require.ErrorIs(t, err, database.ErrAuditChainBroken)
		assert.Contains(t, err.Error(), `row 1 names the key "k1", which is not in the key ring (network.secure_chat.keys): put the key back`)
	})
}

// TestAuditRowsBeforeTheKeyStillVerify: a database of version 9 holds an unkeyed chain;
// after the upgrade it still verifies, the chain continues keyed, and a rewrite of the
// unkeyed rows (anyone can recompute them) is caught at the first keyed row.
func TestAuditRowsBeforeTheKeyStillVerify(t *testing.T) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			spec := testenv.NewDatabase(t, kind)
			raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
			require.NoError(t, err)
			t.Cleanup(func() { _ = raw.Close() })
			// Version 1 as TestUpgradeFromV1 makes it, then the step upgrades to version 9.
			for _, stmt := range v1Schema {
				_, err = raw.Exec(ctx, stmt)
				require.NoError(t, err, stmt)
			}
			v9 := raw.Child(database.VersionTable, upgrades.Table[:9], dbutil.ZeroLogger(zerolog.Nop()))
			require.NoError(t, v9.Upgrade(ctx))
			var version int
			require.NoError(t, raw.QueryRow(ctx, "SELECT version FROM "+database.VersionTable).Scan(&version))
			require.Equal(t, 9, version)

			// What version 9 wrote: the plain SHA-256 chain.
			start := time.Date(2025, 11, 3, 9, 0, 0, 0, time.UTC)
			prev := database.GenesisHash
			for i, e := range auditDay[:5] {
				e.LoginID, e.PortalID, e.At, e.PrevHash = auditLogin, auditPortal, start.Add(time.Duration(i)*time.Minute), prev
				e.Hash = e.ComputeHash()
				_, err = raw.Exec(ctx, `INSERT INTO audit_log (at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, e.At.UnixMilli(), e.Actor, e.LoginID, e.PortalID, e.Event, e.Outcome, e.Detail, e.PrevHash, e.Hash)
				require.NoError(t, err)
				prev = e.Hash
			}

			db := database.New(raw, zerolog.Nop())
			db.Audit.SetKeys(clinicAuditKeys)
			require.NoError(t, db.Upgrade(ctx))
			head, err := db.Audit.VerifyChain(ctx)
			require.NoError(t, err)
			head.LastAt = head.LastAt.UTC()
			assert.Equal(t, database.AuditHead{Rows: 5, LastID: 5, LastAt: start.Add(4 * time.Minute), Hash: prev, Unkeyed: 5}, head)

			rows := appendDay(t, db)
			assert.Equal(t, prev, rows[0].PrevHash, "the keyed chain continues from the last unkeyed row")
			assert.Equal(t, "k1", rows[0].MACKey)
			head, err = db.Audit.VerifyChain(ctx)
			require.NoError(t, err)
			assert.Equal(t, 15, head.Rows)
			assert.Equal(t, 5, head.Unkeyed)

			// A database opened without the key cannot append an unkeyed row after a keyed one.
			nokey := database.New(raw, zerolog.Nop())
			err = nokey.Audit.Append(ctx, &database.AuditEntry{Actor: database.SystemActor, Event: "alert sent", Outcome: "ok"})
			require.ErrorIs(t, err, database.ErrAuditNoKey)
			required := database.New(raw, zerolog.Nop())
			required.Audit.RequireKeys()
			err = required.Audit.Append(ctx, &database.AuditEntry{Actor: database.SystemActor, Event: "alert sent", Outcome: "ok"})
			require.ErrorIs(t, err, database.ErrAuditNoKey)

			// The unkeyed rows are rewritten and recomputed (no key needed for them): the
			// first keyed row no longer links.
			dropAuditGuards(t, db)
			_, err = db.Exec(ctx, "UPDATE audit_log SET outcome='failed' WHERE id=2")
			require.NoError(t, err)
			var unkeyed []*database.AuditEntry
			require.NoError(t, db.Audit.Each(ctx, time.Time{}, time.Time{}, func(e *database.AuditEntry) error {
				if e.MACKey == "" {
					unkeyed = append(unkeyed, e)
				}
				return nil
			}))
			require.Len(t, unkeyed, 5)
			prev = database.GenesisHash
			for _, e := range unkeyed {
				e.PrevHash = prev
				e.Hash = e.ComputeHash()
				_, err = db.Exec(ctx, "UPDATE audit_log SET prev_hash=$1, hash=$2 WHERE id=$3", e.PrevHash, e.Hash, e.ID)
				require.NoError(t, err)
				prev = e.Hash
			}
			_, err = db.Audit.VerifyChain(ctx)
			require.ErrorIs(t, err, database.ErrAuditChainBroken)
			assert.Contains(t, err.Error(), "row 6 does not link to row 5")

			// Moving the line between unkeyed and keyed rows is refused like any change.
			for _, stmt := range []string{"UPDATE audit_chain SET unkeyed_until=100", "DELETE FROM audit_chain"} {
				_, err = db.Exec(ctx, stmt)
				require.Error(t, err, stmt)
				assert.Contains(t, err.Error(), "audit_chain is append-only")
			}
		})
	}
}

func TestParseAuditAnchor(t *testing.T) {
	hash := strings.Repeat("3f", 32)
	good := map[string]database.AuditAnchor{
		"1042:" + hash:              {ID: 1042, Hash: hash},
		"  7:" + hash + "\n":        {ID: 7, Hash: hash},
		"0:" + database.GenesisHash: {ID: 0, Hash: database.GenesisHash},
	}
	for in, want := range good {
		got, err := database.ParseAuditAnchor(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
		assert.Equal(t, strings.TrimSpace(in), got.String())
	}
	for in, want := range map[string]string{
		"":                           "is not ID:HASH",
		hash:                         "is not ID:HASH",
		"row9:" + hash:               "does not start with a row id",
		"-3:" + hash:                 "does not start with a row id",
		"+3:" + hash:                 "does not start with a row id",
		"03:" + hash:                 "does not start with a row id",
		"3:" + hash[:63]:             "64 lower-case hex digits",
		"3:" + strings.ToUpper(hash): "64 lower-case hex digits",
		"3:" + hash + ":" + hash:     "64 lower-case hex digits",
		"0:" + hash:                  "names row 0, the empty log",
	} {
		_, err := database.ParseAuditAnchor(in)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), want, in)
	}
}

// FuzzParseAuditAnchor: whatever an operator pastes, ParseAuditAnchor never panics, and
// what it accepts prints back as it was read.
func FuzzParseAuditAnchor(f *testing.F) {
	f.Add("1042:" + strings.Repeat("3f", 32))
	f.Add("0:" + database.GenesisHash)
	f.Add("9223372036854775807:" + strings.Repeat("a", 64))
	f.Add("1:")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := database.ParseAuditAnchor(s)
		if err != nil {
			if errors.Is(err, database.ErrAuditChainBroken) {
				t.Fatal("a parse error is not a broken chain")
			}
			return
		}
		again, err := database.ParseAuditAnchor(a.String())
		if err != nil || again != a {
			t.Fatalf("%q read as %v, which reads back as %v (%v)", s, a, again, err)
		}
		if a.ID < 0 || len(a.Hash) != 64 {
			t.Fatalf("%q read as %v", s, a)
		}
	})
}
