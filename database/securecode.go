package database

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	secureCodeColumns     = `link_hash, patient_phone, code_hash, created_at, expires_at, used_at`
	insertSecureCodeQuery = `INSERT INTO secure_code (` + secureCodeColumns + `) VALUES ($1, $2, $3, $4, $5, 0)`
	// The newest code of a link is the only one that counts: sending a code replaces the last.
	latestSecureCodeQuery = `SELECT ` + secureCodeColumns + ` FROM secure_code WHERE link_hash=$1 ORDER BY created_at DESC LIMIT 1`
	// useCodeQuery marks a code used unless it already was: a replayed code fails.
	useCodeQuery = `UPDATE secure_code SET used_at=$3 WHERE link_hash=$1 AND code_hash=$2 AND used_at=0`
	// insertCodeWithinLimitsQuery stores a code only while fewer than $7 codes were sent
	// for the link, and to the number, since $6: the count and the insert are one
	// statement, which on SQLite holds the write lock throughout. On PostgreSQL two such
	// statements could both count four, so lockCodeSendsQuery serialises them per number.
	insertCodeWithinLimitsQuery = `
		INSERT INTO secure_code (` + secureCodeColumns + `)
		SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS BIGINT), CAST($5 AS BIGINT), 0
		WHERE (SELECT COUNT(*) FROM secure_code WHERE link_hash=$1 AND created_at>$6)<$7
			AND (SELECT COUNT(*) FROM secure_code WHERE patient_phone=$2 AND created_at>$6)<$7
	`
	// lockCodeSendsQuery (PostgreSQL only) is held until the transaction ends, in every
	// process: one code send per number at a time. The first key keeps these locks apart
	// from other advisory locks (the audit log's is a single bigint, another key space).
	lockCodeSendsQuery  = `SELECT pg_advisory_xact_lock($1, hashtext($2))`
	deleteOldCodesQuery = `DELETE FROM secure_code WHERE expires_at<=$1`
	// pendingCodesQuery finds codes asked for that the bridge has not texted yet.
	pendingCodesQuery = `SELECT ` + secureCodeColumns + ` FROM secure_code WHERE code_hash LIKE 'pending:%' AND expires_at>$1 ORDER BY created_at LIMIT $2`
	// fillCodeQuery claims a pending code for the one pass that texts it.
	fillCodeQuery = `UPDATE secure_code SET code_hash=$2 WHERE link_hash=$1 AND code_hash=$3`
)

// A code asked for and not yet made and texted has "pending:" and a random tag as its
// hash: the bridge makes the code (only the bridge texts), so a web replica stores the
// request, which counts towards the limits at once. It matches no code.
const pendingCodePrefix = "pending:"

// NewPendingCode is the hash of a new code request.
func NewPendingCode() string {
	tag := make([]byte, 12)
	_, _ = rand.Read(tag)
	return pendingCodePrefix + hex.EncodeToString(tag)
}

// IsPendingCode reports whether a code hash is a request not yet texted.
func IsPendingCode(codeHash string) bool { return strings.HasPrefix(codeHash, pendingCodePrefix) }

// CodeNotSent is the code hash of a request the bridge declined (the link was revoked or
// locked meanwhile); it still counts towards the limits and matches no code.
const CodeNotSent = "not sent"

// SecureCode is a one-time code texted for a link; only its keyed hash is kept.
type SecureCode struct {
	LinkHash     string
	PatientPhone string
	CodeHash     string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	UsedAt       time.Time // zero while unused
}

// SecureCodeQuery runs the secure_code table's statements.
type SecureCodeQuery struct {
	*dbutil.QueryHelper[*SecureCode]
}

// Scan reads one row.
func (c *SecureCode) Scan(row dbutil.Scannable) (*SecureCode, error) {
	var created, expires, used int64
	err := row.Scan(&c.LinkHash, &c.PatientPhone, &c.CodeHash, &created, &expires, &used)
	if err != nil {
		return nil, err
	}
	c.CreatedAt, c.ExpiresAt, c.UsedAt = time.UnixMilli(created), time.UnixMilli(expires), unixMilliOrZero(used)
	return c, nil
}

// Insert stores a new code.
func (cq *SecureCodeQuery) Insert(ctx context.Context, c *SecureCode) error {
	return cq.Exec(ctx, insertSecureCodeQuery, c.LinkHash, c.PatientPhone, c.CodeHash, c.CreatedAt.UnixMilli(), c.ExpiresAt.UnixMilli())
}

// Latest returns the newest code of a link, or nil.
func (cq *SecureCodeQuery) Latest(ctx context.Context, linkHash string) (*SecureCode, error) {
	return cq.QueryOne(ctx, latestSecureCodeQuery, linkHash)
}

// Use marks a code used; false means it was already used (a replay).
func (cq *SecureCodeQuery) Use(ctx context.Context, linkHash, codeHash string, at time.Time) (bool, error) {
	res, err := cq.GetDB().Exec(ctx, useCodeQuery, linkHash, codeHash, at.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// codeSendsLockSpace is the first key of lockCodeSendsQuery ("code").
const codeSendsLockSpace int32 = 0x636f6465

// InsertWithinLimit stores a new code unless limit codes were already sent for its link,
// or to its number, since t; false means the limit is reached and nothing was stored.
// Concurrent calls, in one process or several, never store more than limit.
func (cq *SecureCodeQuery) InsertWithinLimit(ctx context.Context, c *SecureCode, t time.Time, limit int) (stored bool, err error) {
	db := cq.GetDB()
	err = db.DoTxn(ctx, nil, func(ctx context.Context) error {
		if db.Dialect == dbutil.Postgres {
			if _, err := db.Exec(ctx, lockCodeSendsQuery, codeSendsLockSpace, c.PatientPhone); err != nil {
				return fmt.Errorf("failed to take the code-send lock: %w", err)
			}
		}
		res, err := db.Exec(ctx, insertCodeWithinLimitsQuery, c.LinkHash, c.PatientPhone, c.CodeHash,
			c.CreatedAt.UnixMilli(), c.ExpiresAt.UnixMilli(), t.UnixMilli(), limit)
		if err != nil {
			return fmt.Errorf("failed to store the code: %w", err)
		}
		n, err := res.RowsAffected()
		stored = n == 1
		return err
	})
	return stored, err
}

// Pending returns up to limit codes asked for and not yet texted that have not expired
// at now, oldest first.
func (cq *SecureCodeQuery) Pending(ctx context.Context, now time.Time, limit int) ([]*SecureCode, error) {
	return cq.QueryMany(ctx, pendingCodesQuery, now.UnixMilli(), limit)
}

// Fill sets the hash of a pending code; false means another pass claimed it first.
func (cq *SecureCodeQuery) Fill(ctx context.Context, c *SecureCode, codeHash string) (bool, error) {
	res, err := cq.GetDB().Exec(ctx, fillCodeQuery, c.LinkHash, codeHash, c.CodeHash)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if n == 1 {
		c.CodeHash = codeHash
	}
	return n == 1, err
}

// DeleteExpiredBefore removes codes that expired before t.
func (cq *SecureCodeQuery) DeleteExpiredBefore(ctx context.Context, t time.Time) error {
	return cq.Exec(ctx, deleteOldCodesQuery, t.UnixMilli())
}
