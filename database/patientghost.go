package database

import (
	"context"
	"database/sql"
	"errors"
	"sync"
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
	db    *dbutil.Database
	known *ghostIDCache // nil: every lookup reads the table
}

// PatientGhosts runs the patient_ghost table's statements.
func (db *Database) PatientGhosts() *PatientGhostQuery {
	return &PatientGhostQuery{db.Database, db.ghostIDs}
}

// ghostIDCacheSize bounds the ghost IDs kept in memory (about 100 bytes each); when full
// it starts again empty, and the numbers in use come back at their next lookup.
const ghostIDCacheSize = 10000

// ghostIDCache keeps the ghost IDs read from patient_ghost: a number's row never changes
// nor goes once stored (in any process: the first one stored wins), so a copy never goes
// stale. A number with no row yet is not remembered.
type ghostIDCache struct {
	mu      sync.Mutex
	byPhone map[string]string
}

func (c *ghostIDCache) get(phone string) string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byPhone[phone]
}

func (c *ghostIDCache) put(phone, id string) {
	if c == nil || id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byPhone == nil || len(c.byPhone) >= ghostIDCacheSize {
		c.byPhone = make(map[string]string)
	}
	c.byPhone[phone] = id
}

// GhostID returns the ghost ID of a patient number (E.164), or "" when it has none yet.
// A number's ID is read from the table once, then kept in memory.
func (pq *PatientGhostQuery) GhostID(ctx context.Context, phone string) (string, error) {
	if id := pq.known.get(phone); id != "" {
		return id, nil
	}
	id, err := pq.scanString(ctx, getPatientGhostIDQuery, phone)
	if err == nil {
		pq.known.put(phone, id)
	}
	return id, err
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
