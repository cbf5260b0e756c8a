package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	getSyncedUntilQuery = `SELECT synced_until FROM twilio_sync WHERE login_id=$1`
	// The mark only moves forward: a catch-up that started earlier and ended later
	// cannot take it back.
	advanceSyncedUntilQuery = `
		INSERT INTO twilio_sync (login_id, synced_until) VALUES ($1, $2)
		ON CONFLICT (login_id) DO UPDATE SET synced_until=excluded.synced_until
		WHERE twilio_sync.synced_until<excluded.synced_until
	`
	initSyncedUntilQuery = `INSERT INTO twilio_sync (login_id, synced_until) VALUES ($1, $2) ON CONFLICT (login_id) DO NOTHING`
)

// TwilioSyncQuery runs the twilio_sync table's statements: how far each clinic number's
// message log at Twilio is known to be stored.
type TwilioSyncQuery struct {
	db *dbutil.Database
}

// SyncedUntil is when the last complete read of the number's message log began; false
// when it was never read.
func (q *TwilioSyncQuery) SyncedUntil(ctx context.Context, loginID string) (time.Time, bool, error) {
	var until int64
	err := q.db.QueryRow(ctx, getSyncedUntilQuery, loginID).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, err
	}
	return time.UnixMilli(until), true, nil
}

// Advance records that every text sent to the number before until is stored.
func (q *TwilioSyncQuery) Advance(ctx context.Context, loginID string, until time.Time) error {
	_, err := q.db.Exec(ctx, advanceSyncedUntilQuery, loginID, until.UnixMilli())
	return err
}

// Init sets the mark of a number linked for the first time; a number linked again keeps
// its mark, so that the texts sent while it was unlinked are found.
func (q *TwilioSyncQuery) Init(ctx context.Context, loginID string, at time.Time) error {
	_, err := q.db.Exec(ctx, initSyncedUntilQuery, loginID, at.UnixMilli())
	return err
}
