package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	getPatientGhostIDQuery = `SELECT ghost_id FROM patient_ghost WHERE phone=$1`
	getPatientPhoneQuery   = `SELECT phone FROM patient_ghost WHERE ghost_id=$1`
	insertPatientGhostSQL  = `
		INSERT INTO patient_ghost (phone, ghost_id, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (phone) DO NOTHING
	`
)

// PatientGhostQuery runs the patient_ghost table's statements: the opaque ghost ID of
// each patient number, so that no Matrix user ID holds the number.
type PatientGhostQuery struct {
	db *dbutil.Database
}

// PatientGhosts runs the patient_ghost table's statements.
func (db *Database) PatientGhosts() *PatientGhostQuery { return &PatientGhostQuery{db.Database} }

// GhostID returns the ghost ID of a patient number (E.164), or "" when it has none yet.
func (pq *PatientGhostQuery) GhostID(ctx context.Context, phone string) (string, error) {
	return pq.scanString(ctx, getPatientGhostIDQuery, phone)
}

// Phone returns the patient number (E.164) a ghost ID stands for, or "" when the ID is
// not a patient's.
func (pq *PatientGhostQuery) Phone(ctx context.Context, ghostID string) (string, error) {
	return pq.scanString(ctx, getPatientPhoneQuery, ghostID)
}

// EnsureGhostID returns the ghost ID of a patient number, storing candidate (a new random
// ID) when the number has none. Of two callers racing, in one process or several, both
// get the ID stored first: a number has one ghost for ever.
func (pq *PatientGhostQuery) EnsureGhostID(ctx context.Context, phone, candidate string, now time.Time) (string, error) {
	if id, err := pq.GhostID(ctx, phone); err != nil || id != "" {
		return id, err
	}
	if _, err := pq.db.Exec(ctx, insertPatientGhostSQL, phone, candidate, now.UnixMilli()); err != nil {
		return "", err
	}
	id, err := pq.GhostID(ctx, phone)
	if err == nil && id == "" {
		err = errors.New("the patient's ghost ID was not stored")
	}
	return id, err
}

func (pq *PatientGhostQuery) scanString(ctx context.Context, query string, arg string) (string, error) {
	var out string
	err := pq.db.QueryRow(ctx, query, arg).Scan(&out)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return out, err
}
