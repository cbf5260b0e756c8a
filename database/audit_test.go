package database_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

const (
	auditLogin  = "15550001111"
	auditPortal = "15551234567"
)

// openAuditDB opens one more handle (its own connection pool) on a test database.
func openAuditDB(tb testing.TB, spec testenv.DBSpec) *database.Database {
	raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = raw.Close() })
	db := database.New(raw, zerolog.Nop())
	db.Audit.SetKeys(clinicAuditKeys)
	require.NoError(tb, db.Upgrade(context.Background()))
	return db
}

// auditDay is what a clinic's audit log holds after a morning: ten events.
var auditDay = []database.AuditEntry{
	{Actor: database.StaffActor("@nurse.kim:clinic.example"), Event: "mode switched", Outcome: "ok", Detail: "secure"},
	{Actor: database.SystemActor, Event: "link issued", Outcome: "ok"},
	{Actor: database.StaffActor("@nurse.kim:clinic.example"), Event: "message stored for secure chat", Outcome: "ok", Detail: "text"},
	{Actor: database.SystemActor, Event: "alert sent", Outcome: "ok"},
	{Actor: database.ParseAuditActor("patient:browser"), Event: "code sent", Outcome: "ok"},
	{Actor: database.ParseAuditActor("patient:browser"), Event: "code verified", Outcome: "failed", Detail: "1 of 5 attempts"},
	{Actor: database.ParseAuditActor("patient:browser"), Event: "code verified", Outcome: "ok"},
	{Actor: database.StaffActor("@dr.okafor:clinic.example"), Event: "dob recorded", Outcome: "ok", Detail: "set"},
	{Actor: database.ParseAuditActor("patient:browser"), Event: "session ended", Outcome: "ok", Detail: "signed out"},
	{Actor: database.StaffActor("@nurse.kim:clinic.example"), Event: "mode switched", Outcome: "ok", Detail: "sms"},
}

// appendDay writes auditDay a minute apart and returns the stored entries.
func appendDay(t *testing.T, db *database.Database) []*database.AuditEntry {
	start := time.Date(2026, 1, 12, 8, 30, 0, 0, time.UTC)
	var out []*database.AuditEntry
	for i, e := range auditDay {
		e.LoginID, e.PortalID, e.At = auditLogin, auditPortal, start.Add(time.Duration(i)*time.Minute+123*time.Millisecond)
		require.NoError(t, db.Audit.Append(context.Background(), &e))
		out = append(out, &e)
	}
	return out
}

func TestAuditChainVerifies(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		empty, err := db.Audit.VerifyChain(ctx)
		require.NoError(t, err)
		assert.Equal(t, database.AuditHead{Hash: database.GenesisHash}, empty)

		rows := appendDay(t, db)
		head, err := db.Audit.VerifyChain(ctx)
		require.NoError(t, err)
		last := rows[len(rows)-1]
		assert.Equal(t, len(auditDay), head.Rows)
		assert.Equal(t, last.ID, head.LastID)
		assert.True(t, last.At.Equal(head.LastAt))
		assert.Equal(t, last.Hash, head.Hash)
		assert.Equal(t, database.GenesisHash, rows[0].PrevHash)
		for i := 1; i < len(rows); i++ {
			assert.Equal(t, rows[i-1].Hash, rows[i].PrevHash)
		}

		// Each and Count select by time, oldest first; until is exclusive.
		var got []int64
		require.NoError(t, db.Audit.Each(ctx, rows[2].At, rows[5].At, func(e *database.AuditEntry) error {
			got = append(got, e.ID)
			return nil
		}))
		assert.Equal(t, []int64{rows[2].ID, rows[3].ID, rows[4].ID}, got)
		n, err := db.Audit.Count(ctx, rows[2].At, time.Time{})
		require.NoError(t, err)
		assert.Equal(t, len(rows)-2, n)
	})
}

// TestAuditVerifyNamesFirstBrokenRow tampers with a ten-row chain (ids 1–10) in the ways
// someone with database access could, and checks the row the error names.
func TestAuditVerifyNamesFirstBrokenRow(t *testing.T) {
	// The forger here holds the key (an insider): what verify says about the row's place
	// in the chain is under test, not the key.
	forge := func(prev string) (e database.AuditEntry) {
		e = database.AuditEntry{At: time.Date(2026, 1, 12, 8, 34, 30, 0, time.UTC), Actor: database.StaffActor("@nurse.kim:clinic.example"),
			LoginID: auditLogin, PortalID: auditPortal, Event: "code unlocked", Outcome: "ok", PrevHash: prev, MACKey: "k1"}
		e.Hash, _ = e.ComputeMAC(clinicAuditKeys)
		return
	}
	insert := func(t *testing.T, db *database.Database, id int64, e database.AuditEntry) {
		_, err := db.Exec(context.Background(), `INSERT INTO audit_log (id, at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash, mac_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			id, e.At.UnixMilli(), e.Actor, e.LoginID, e.PortalID, e.Event, e.Outcome, e.Detail, e.PrevHash, e.Hash, e.MACKey)
		require.NoError(t, err)
	}
	exec := func(t *testing.T, db *database.Database, query string, args ...any) {
		_, err := db.Exec(context.Background(), query, args...)
		require.NoError(t, err, query)
	}
	bogus := sha256.Sum256([]byte("forged"))

	cases := []struct {
		name    string
		tamper  func(t *testing.T, db *database.Database, rows []*database.AuditEntry)
		id      int64
		prevID  int64
		message []string
	}{{
		name: "one byte of detail flipped",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			detail := []byte(rows[5].Detail)
			detail[0] ^= 0x01 // "1 of 5" → "0 of 5"
			exec(t, db, "UPDATE audit_log SET detail=$1 WHERE id=$2", string(detail), rows[5].ID)
		},
		id: 6, prevID: 5, message: []string{"row 6 was changed", `"code verified"`},
	}, {
		name: "actor changed",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			exec(t, db, "UPDATE audit_log SET actor='@dr.okafor:clinic.example' WHERE id=$1", rows[0].ID)
		},
		id: 1, prevID: 0, message: []string{"row 1 was changed", `"mode switched"`},
	}, {
		name: "newest row changed",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			exec(t, db, "UPDATE audit_log SET outcome='failed' WHERE id=$1", rows[9].ID)
		},
		id: 10, prevID: 9, message: []string{"row 10 was changed"},
	}, {
		name: "middle row deleted",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			exec(t, db, "DELETE FROM audit_log WHERE id=$1", rows[4].ID)
		},
		id: 6, prevID: 4, message: []string{"row 6 does not link to row 4", "deleted", "no row has id 5"},
	}, {
		name: "first row deleted",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			exec(t, db, "DELETE FROM audit_log WHERE id=$1", rows[0].ID)
		},
		id: 2, prevID: 0, message: []string{"row 2 does not link to the start of the log", "deleted", "no row has id 1"},
	}, {
		name: "row rewritten with a plain SHA-256 hash",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			e := *rows[3]
			e.Outcome, e.MACKey = "failed", ""
			exec(t, db, "UPDATE audit_log SET outcome=$1, hash=$2, mac_key='' WHERE id=$3", e.Outcome, e.ComputeHash(), e.ID)
		},
		id: 4, prevID: 3, message: []string{"row 4 has no MAC, but every row after the start of the log is keyed"},
	}, {
		name: "row claims a key the ring does not have",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			exec(t, db, "UPDATE audit_log SET mac_key='k9' WHERE id=$1", rows[2].ID)
		},
		id: 3, prevID: 2, message: []string{`row 3 names the key "k9", which is not in the key ring`},
	}, {
		name: "row rewritten with a hash recomputed with the key",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			e := *rows[3]
			e.Outcome = "failed"
			hash, _ := e.ComputeMAC(clinicAuditKeys)
			exec(t, db, "UPDATE audit_log SET outcome=$1, hash=$2 WHERE id=$3", e.Outcome, hash, e.ID)
		},
		id: 5, prevID: 4, message: []string{"row 5 does not link to row 4", "row 4 was rewritten"},
	}, {
		name: "row inserted between two others",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			// Make room for id 6; the forged row cannot reuse row 5's hash as its prev_hash
			// (the unique index), so it links to something else.
			exec(t, db, "UPDATE audit_log SET id=id+100 WHERE id>5")
			insert(t, db, 6, forge(hex.EncodeToString(bogus[:])))
		},
		id: 6, prevID: 5, message: []string{"row 6 was inserted between row 5 and row 106", `"code unlocked"`},
	}, {
		name: "row inserted with a correct link after the index was dropped",
		tamper: func(t *testing.T, db *database.Database, rows []*database.AuditEntry) {
			exec(t, db, "DROP INDEX audit_log_prev_hash_idx")
			exec(t, db, "UPDATE audit_log SET id=id+100 WHERE id>5")
			insert(t, db, 6, forge(rows[4].Hash))
		},
		id: 6, prevID: 5, message: []string{"row 6 was inserted between row 5 and row 106", `"code unlocked"`},
	}}
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					db := openDB(t, kind)
					rows := appendDay(t, db)
					require.Equal(t, int64(1), rows[0].ID, "the cases name ids 1–10")
					dropAuditGuards(t, db)
					tc.tamper(t, db, rows)
					head, err := db.Audit.VerifyChain(context.Background())
					require.ErrorIs(t, err, database.ErrAuditChainBroken)
					var br *database.AuditBreak
					require.True(t, errors.As(err, &br))
					assert.Equal(t, tc.id, br.ID, err.Error())
					assert.Equal(t, tc.prevID, br.PrevID, err.Error())
					for _, m := range tc.message {
						assert.Contains(t, err.Error(), m)
					}
					assert.Less(t, head.Rows, len(rows), "the head is the last intact row")
				})
			}
		})
	}
}

// TestAuditTruncationNeedsTheHead: cutting the newest rows leaves a valid chain; only
// a head kept from earlier shows it.
func TestAuditTruncationNeedsTheHead(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		rows := appendDay(t, db)
		before, err := db.Audit.VerifyChain(ctx)
		require.NoError(t, err)
		assert.Equal(t, database.AuditAnchor{ID: rows[9].ID, Hash: rows[9].Hash}, before.Anchor())
		dropAuditGuards(t, db)
		_, err = db.Exec(ctx, "DELETE FROM audit_log WHERE id>=$1", rows[8].ID)
		require.NoError(t, err)
		after, err := db.Audit.VerifyChain(ctx)
		require.NoError(t, err)
		assert.Equal(t, 8, after.Rows)
		assert.NotEqual(t, before.Hash, after.Hash)

		_, err = db.Audit.VerifyChain(ctx, before.Anchor())
		require.ErrorIs(t, err, database.ErrAuditChainBroken)
		var br *database.AuditBreak
		require.ErrorAs(t, err, &br)
		assert.True(t, br.Anchor)
		assert.Equal(t, rows[9].ID, br.ID)
		assert.Contains(t, err.Error(), "the kept head 10:"+rows[9].Hash+" names row 10, but the log ends at row 8: rows were cut from its end")
	})
}

// TestAuditAppendJoinsTransaction: an action that fails takes its audit row with it.
func TestAuditAppendJoinsTransaction(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		errAction := errors.New("Twilio refused the message")
		err := db.DoTxn(ctx, nil, func(ctx context.Context) error {
			require.NoError(t, db.Audit.Append(ctx, &database.AuditEntry{Actor: database.SystemActor, LoginID: auditLogin,
				PortalID: auditPortal, Event: "alert sent", Outcome: "ok"}))
			return errAction
		})
		require.ErrorIs(t, err, errAction)
		n, err := db.Audit.Count(ctx, time.Time{}, time.Time{})
		require.NoError(t, err)
		assert.Zero(t, n, "the rolled-back action left no audit row")

		require.NoError(t, db.DoTxn(ctx, nil, func(ctx context.Context) error {
			for _, ev := range []database.AuditEvent{database.EventLinkRevoked, database.EventModeSwitched} {
				if err := db.Audit.Append(ctx, &database.AuditEntry{Actor: database.StaffActor("@nurse.kim:clinic.example"), LoginID: auditLogin,
					PortalID: auditPortal, Event: ev, Outcome: "ok"}); err != nil {
					return err
				}
			}
			return nil
		}))
		head, err := db.Audit.VerifyChain(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2, head.Rows)
	})
}

// TestAuditAppendRefusesFork: when the prev_hash the writer chose is already taken, the
// unique index refuses the row and Append says why.
func TestAuditAppendRefusesFork(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		rows := appendDay(t, db)
		// A row outside the id order that already claims the head as its predecessor.
		stray := database.AuditEntry{At: time.Now(), Actor: database.SystemActor, Event: "alert sent", Outcome: "ok", PrevHash: rows[9].Hash}
		stray.Hash = stray.ComputeHash()
		_, err := db.Exec(ctx, `INSERT INTO audit_log (id, at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash)
			VALUES (0, $1, $2, '', '', $3, $4, '', $5, $6)`, stray.At.UnixMilli(), stray.Actor, stray.Event, stray.Outcome, stray.PrevHash, stray.Hash)
		require.NoError(t, err)
		err = db.Audit.Append(ctx, &database.AuditEntry{Actor: database.SystemActor, LoginID: auditLogin, PortalID: auditPortal,
			Event: "link issued", Outcome: "ok"})
		require.ErrorIs(t, err, database.ErrAuditFork)
		assert.Contains(t, err.Error(), "would have forked")
	})
}

// TestAuditAppendConcurrent: goroutines on two separate connection pools (as two
// processes would be) append at once; the chain stays one line.
func TestAuditAppendConcurrent(t *testing.T) {
	const handles, writers, each = 2, 4, 15
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			spec := testenv.NewDatabase(t, kind)
			dbs := make([]*database.Database, handles)
			for i := range dbs {
				dbs[i] = openAuditDB(t, spec)
			}
			var wg sync.WaitGroup
			errs := make(chan error, handles*writers*each)
			for h, db := range dbs {
				for w := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range each {
							errs <- db.Audit.Append(context.Background(), &database.AuditEntry{
								Actor: database.StaffActor(id.UserID(fmt.Sprintf("@nurse%d:clinic.example", w))), LoginID: auditLogin, PortalID: auditPortal,
								Event: "code sent", Outcome: "ok", Detail: fmt.Sprintf("handle %d, write %d", h, i)})
						}
					}()
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			head, err := dbs[1].Audit.VerifyChain(context.Background())
			require.NoError(t, err)
			assert.Equal(t, handles*writers*each, head.Rows)
		})
	}
}

// BenchmarkAuditVerify verifies a chain of 100,000 rows (the figure the issue asks for).
func BenchmarkAuditVerify(b *testing.B) {
	const rows = 100_000
	for _, kind := range testenv.DatabaseKinds {
		b.Run(kind, func(b *testing.B) {
			db := openAuditDB(b, testenv.NewDatabase(b, kind))
			fillAuditLog(b, db, rows)
			for b.Loop() {
				head, err := db.Audit.VerifyChain(context.Background())
				if err != nil || head.Rows != rows {
					b.Fatalf("verify: %d rows, %v", head.Rows, err)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// fillAuditLog writes a valid chain of n realistic rows in bulk (multi-row inserts).
func fillAuditLog(b *testing.B, db *database.Database, n int) {
	const batch = 500
	ctx := context.Background()
	prev, at := database.GenesisHash, time.Date(2026, 1, 1, 7, 0, 0, 0, time.UTC)
	err := db.DoTxn(ctx, nil, func(ctx context.Context) error {
		for start := 0; start < n; start += batch {
			var values []string
			var args []any
			for i := start; i < min(start+batch, n); i++ {
				e := auditDay[i%len(auditDay)]
				e.LoginID, e.PortalID = auditLogin, fmt.Sprintf("1555%07d", i%5000)
				e.At, e.PrevHash, e.MACKey = at.Add(time.Duration(i)*7*time.Second), prev, clinicAuditKeys.Current()
				e.Hash, _ = e.ComputeMAC(clinicAuditKeys)
				prev = e.Hash
				p := len(args)
				values = append(values, fmt.Sprintf("($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", p+1, p+2, p+3, p+4, p+5, p+6, p+7, p+8, p+9, p+10))
				args = append(args, e.At.UnixMilli(), e.Actor, e.LoginID, e.PortalID, e.Event, e.Outcome, e.Detail, e.PrevHash, e.Hash, e.MACKey)
			}
			if _, err := db.Exec(ctx, "INSERT INTO audit_log (at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash, mac_key) VALUES "+
				strings.Join(values, ", "), args...); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(b, err)
}
