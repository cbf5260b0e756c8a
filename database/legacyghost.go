package database

import (
	"context"

	"go.mau.fi/util/dbutil"
)

const (
	listLegacyGhostsQuery = `SELECT phone FROM legacy_ghost ORDER BY phone LIMIT $1`
	deleteLegacyGhostSQL  = `DELETE FROM legacy_ghost WHERE phone=$1`
)

// LegacyGhostQuery runs the legacy_ghost table's statements: the patient numbers whose
// ghost was named by the number (before schema version 11), until the bridge has moved
// their rooms to the opaque ghost.
type LegacyGhostQuery struct {
	db *dbutil.Database
}

// LegacyGhosts runs the legacy_ghost table's statements.
func (db *Database) LegacyGhosts() *LegacyGhostQuery { return &LegacyGhostQuery{db.Database} }

// List returns up to limit patient numbers (E.164) whose ghost is still named by the number.
func (lq *LegacyGhostQuery) List(ctx context.Context, limit int) ([]string, error) {
	rows, err := lq.db.Query(ctx, listLegacyGhostsQuery, limit)
	return dbutil.NewRowIterWithError(rows, dbutil.ScanSingleColumn[string], err).AsList()
}

// Done records that the number's old ghost has left its rooms and lost its profile.
func (lq *LegacyGhostQuery) Done(ctx context.Context, phone string) error {
	_, err := lq.db.Exec(ctx, deleteLegacyGhostSQL, phone)
	return err
}
