package database_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

func TestPatientGhostIDIsStoredOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		q := db.PatientGhosts()
		id, err := q.GhostID(ctx, "+15551234567")
		require.NoError(t, err)
		assert.Empty(t, id, "no ID before the first use")

		id, err = q.EnsureGhostID(ctx, "+15551234567", "pabcdefghijklmnop", time.Now())
		require.NoError(t, err)
		assert.Equal(t, "pabcdefghijklmnop", id)
		id, err = q.EnsureGhostID(ctx, "+15551234567", "pqqqqqqqqqqqqqqqq", time.Now())
		require.NoError(t, err)
		assert.Equal(t, "pabcdefghijklmnop", id, "a number keeps its first ID")

		phone, err := q.Phone(ctx, "pabcdefghijklmnop")
		require.NoError(t, err)
		assert.Equal(t, "+15551234567", phone)
		phone, err = q.Phone(ctx, "pqqqqqqqqqqqqqqqq")
		require.NoError(t, err)
		assert.Empty(t, phone, "an ID that lost the race stands for nobody")

		_, err = q.EnsureGhostID(ctx, "+15557654321", "pabcdefghijklmnop", time.Now())
		assert.Error(t, err, "two numbers never share an ID")
	})
}

// TestPatientGhostIDIsReadOnceThenKept: a number's ID, once read, comes from memory (the
// row never changes); a number without one yet is asked about again, so an ID another
// process stores meanwhile is found.
func TestPatientGhostIDIsReadOnceThenKept(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		other := database.New(db.Database, zerolog.Nop()) // another bridge process
		id, err := db.PatientGhosts().GhostID(ctx, "+15551234567")
		require.NoError(t, err)
		assert.Empty(t, id)
		id, err = other.PatientGhosts().EnsureGhostID(ctx, "+15551234567", "pabcdefghijklmnop", time.Now())
		require.NoError(t, err)
		assert.Equal(t, "pabcdefghijklmnop", id)
		id, err = db.PatientGhosts().GhostID(ctx, "+15551234567")
		require.NoError(t, err)
		assert.Equal(t, "pabcdefghijklmnop", id, "a number without an ID is not remembered as such")

		// Only to tell memory from the table: the bridge never deletes a ghost's row.
		_, err = db.Exec(ctx, `DELETE FROM patient_ghost WHERE phone=$1`, "+15551234567")
		require.NoError(t, err)
		id, err = db.PatientGhosts().EnsureGhostID(ctx, "+15551234567", "pqqqqqqqqqqqqqqqq", time.Now())
		require.NoError(t, err)
		assert.Equal(t, "pabcdefghijklmnop", id, "read once, then kept")
		fresh := database.New(db.Database, zerolog.Nop())
		id, err = fresh.PatientGhosts().GhostID(ctx, "+15551234567")
		require.NoError(t, err)
		assert.Empty(t, id, "a new process reads the table")
	})
}

// TestPatientGhostIDRace: bridge processes (or inbound texts and start-chat) asking at
// once for a new number's ID all get the one stored.
func TestPatientGhostIDRace(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		const n = 16
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ids[i], errs[i] = db.PatientGhosts().EnsureGhostID(ctx, "+15551234567", fmt.Sprintf("p%016d", i), time.Now())
			}()
		}
		close(start)
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i])
			assert.Equal(t, ids[0], ids[i])
		}
		stored, err := db.PatientGhosts().GhostID(ctx, "+15551234567")
		require.NoError(t, err)
		assert.Equal(t, ids[0], stored)
	})
}

// TestUpgradeListsLegacyGhosts: a database from before opaque ghost IDs (here created at
// version 1, with conversations) lists each patient number once, for the bridge to move
// off the ghost named by the number; a new database lists none.
func TestUpgradeListsLegacyGhosts(t *testing.T) {
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
			for _, row := range [][3]string{
				{"15550001111", "15551234567", "+15551234567"},
				{"15550002222", "15551234567", "+15551234567"}, // a second clinic number, same patient
				{"15550001111", "447700900123", "+447700900123"},
			} {
				_, err = raw.Exec(ctx, `INSERT INTO conversation (login_id, portal_id, clinic_phone, patient_phone, created_at)
					VALUES ($1, $2, '+'||$1, $3, 1)`, row[0], row[1], row[2])
				require.NoError(t, err)
			}
			db := database.New(raw, zerolog.Nop())
			require.NoError(t, db.Upgrade(ctx))

			legacy, err := db.LegacyGhosts().List(ctx, 10)
			require.NoError(t, err)
			assert.Equal(t, []string{"+15551234567", "+447700900123"}, legacy)
			id, err := db.PatientGhosts().GhostID(ctx, "+15551234567")
			require.NoError(t, err)
			assert.Empty(t, id, "opaque IDs are drawn by the bridge (crypto/rand), not by SQL")

			require.NoError(t, db.LegacyGhosts().Done(ctx, "+15551234567"))
			legacy, err = db.LegacyGhosts().List(ctx, 10)
			require.NoError(t, err)
			assert.Equal(t, []string{"+447700900123"}, legacy)
		})
	}
}

func TestNewDatabaseHasNoLegacyGhosts(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		legacy, err := db.LegacyGhosts().List(context.Background(), 10)
		require.NoError(t, err)
		assert.Empty(t, legacy)
	})
}
